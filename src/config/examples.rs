//! Complete, commented example configuration files, one per role.

use super::Role;

/// A complete, commented example configuration for `role`: every key it uses,
/// with its meaning and default. Suitable as a starting `/etc/pgha/pgha.toml`
/// (adjust names, addresses and paths).
pub fn example(role: Role) -> &'static str {
    match role {
        Role::Db => DB,
        Role::Witness => WITNESS,
        Role::Edge => EDGE,
    }
}

/// The `[dcs]` tuning keys and the `[dcs.limits]` section, the same text for every voting member (db and witness);
/// a macro so that `concat!` can build each example as one `&'static str`.
macro_rules! dcs_members_tuning {
    () => {
        r#"# Default: [] (the addresses in `peers`).
# endpoints = []
# Raft heartbeat interval in ms; at least 10. Default: 50.
heartbeat_ms = 50
# Election timeout range in ms: min at least 3 x heartbeat_ms, max > min.
# A dead Raft leader is replaced after about max + [min, max] ms.
# Defaults: 250 and 400.
election_timeout_min_ms = 250
election_timeout_max_ms = 400
# Raft log entries between snapshots; at least 100. Default: 5000.
snapshot_logs = 5000
# Timeout of client RPCs and of requests forwarded to the leader, in ms.
# Default: 2000.
request_timeout_ms = 2000

[dcs.limits]
# Size limits, checked by the member a write is sent to and again by the
# Raft leader: use the same values on every member. Each key as
# PGHA_DCS__LIMITS__<KEY>. Longest key (and range or watch prefix), in
# bytes: 64 to 65536. Default: 4096.
# max_key_bytes = 4096
# Largest value of one put, in bytes: 1024 to 4194304; key + value must
# fit in max_request_bytes. Default: 1048576 (1 MiB).
# max_value_bytes = 1048576
# Compares + operations of one transaction: 8 to 10000. Default: 128.
# max_txn_ops = 128
# A whole transaction as logged and replicated, in bytes: 65536 to 8388608.
# Default: 1572864 (1.5 MiB).
# max_request_bytes = 1572864
# Quota of the whole key space (keys, values, leases), in bytes; writes that
# would grow it further are refused, deletes always pass. At least
# 4 x max_request_bytes, at most 1073741824. Default: 67108864 (64 MiB).
# max_state_bytes = 67108864
# Recent events kept for watchers that resume (at most 20000 either way), in
# bytes: max_request_bytes to 1073741824. Default: 33554432 (32 MiB).
# watch_history_bytes = 33554432
"#
    };
}

const DB: &str = concat!(
    r#"# pgha configuration for a database node (`pgha run --role db`): a voting member of the
# embedded Raft DCS that also supervises the local PostgreSQL.
#
# Precedence: command-line flags > environment > this file > defaults.
# Any key can be set from the environment as PGHA_<SECTION>__<KEY>, e.g.
# PGHA_NODE__NAME=db1 or PGHA_DCS__PEERS=db1=10.0.0.1:7400,db2=10.0.0.2:7400

[cluster]
# Cluster name: lowercase letters, digits, '_' and '-'; the same on every
# node, edge and ctl of this cluster. Default: "pgha".
name = "pgha"

[node]
# This node's name (letters, digits, '.', '_', '-'); must match its entry in
# dcs.peers. Required, no default.
name = "db1"
# Directory for pgha's own state (Raft log and snapshots). This is not the
# PostgreSQL data directory. Required, no default.
data_dir = "/var/lib/pgha"

[dcs]
# host:port the gRPC server (Raft + client API) binds. Required, no default.
listen = "0.0.0.0:7400"
# host:port others use to reach this node.
# Default: this node's address in `peers`.
# advertise = "10.0.0.1:7400"
# Initial voters as "name=host:port" (IPv6: "db1=[fd00::1]:7400"), this node
# included. Used once to bootstrap the cluster; later changes go through
# `pgha ctl`. Names and addresses must be unique. Required.
peers = ["db1=10.0.0.1:7400", "db2=10.0.0.2:7400", "w1=10.0.0.3:7400"]
# host:port of DCS members for clients (edge, ctl); db nodes do not use it.
"#,
    dcs_members_tuning!(),
    r#"
[postgresql]
# Directory with postgres, initdb, pg_ctl, ...
# Default: discovered (pg_config --bindir, /usr/lib/postgresql/<version>/bin).
# bin_dir = "/usr/lib/postgresql/17/bin"
# The PostgreSQL data directory (PGDATA); not node.data_dir itself.
# Default: <node.data_dir>/pgdata.
# data_dir = "/var/lib/pgha/pgdata"
# host:port for listen_addresses and port; may bind all ("0.0.0.0:5432",
# "[::]:5432"). Default: "0.0.0.0:5432".
listen = "0.0.0.0:5432"
# host:port other nodes and clients use to reach this PostgreSQL.
# Default: the host of dcs.advertise (or of this node in dcs.peers) with
# the port of `listen`.
# connect_address = "10.0.0.1:5432"
# OS user that owns the data directory and runs PostgreSQL when pgha runs as
# root (letters, digits, '_'). Default: "postgres".
os_user = "postgres"
# Database superuser created by initdb (letters, digits, '_'; not "pg_...").
# Default: "postgres".
superuser = "postgres"
# File whose first line is the superuser's password; keep it mode 0600.
# Required, no default.
superuser_password_file = "/etc/pgha/secrets/superuser"
# Role for replication, pg_basebackup and pg_rewind; not the superuser.
# Default: "replicator".
replication_user = "replicator"
# File whose first line is the replication user's password; keep it mode
# 0600. Required, no default.
replication_password_file = "/etc/pgha/secrets/replication"
# pg_hba.conf lines, one per entry. Default: [] (pgha's safe default rules).
# pg_hba = ["hostssl all all 10.0.0.0/24 scram-sha-256"]
# When pg_rewind fails, clone the data directory again from the leader.
# Default: true.
rewind_fallback_reinit = true
# Allow wiping a data directory that belongs to another cluster; with false
# it is refused, never wiped. Default: false.
allow_wipe_foreign_data = false
# How long PostgreSQL may take to start, in ms; at least 1000. Default: 60000.
start_timeout_ms = 60000
# Serve TLS from PostgreSQL with the [tls] cert and key (unless
# tls.plaintext = true). Default: true.
tls = true
# Patroni's pre_promote: run after this node won the leader key, before it
# promotes PostgreSQL, with no arguments (PGHA_HOOK=pre_promote, PGHA_ROLE,
# PGHA_CLUSTER and PGHA_NODE in its environment). Exit 0 promotes; any other
# exit vetoes: the leader key is released and this node stays out of leader
# races for 3 x ttl, so another member is promoted. A command line (split
# like a shell word list; no shell runs it) or an argv array. Default: unset.
# pre_promote = "/usr/local/bin/fence-old-primary --site dc1"
# A pre_promote still running after this many ms is killed; at least 100.
# The leader key stays with this node meanwhile. Default: 10000.
pre_promote_timeout_ms = 10000
# After a pre_promote timeout: "veto" (do not promote) or "promote".
# Default: "veto".
pre_promote_on_timeout = "veto"
# A [postgresql.callbacks] command still running after this many ms is
# killed; at least 100. Default: 30000.
callback_timeout_ms = 30000
# How a new replica gets its data directory, tried in order until one works:
# "basebackup" (pg_basebackup from the leader), "pgbackrest" (restore from
# [postgresql.pgbackrest], then catch up from the archive and stream) or the
# name of a [postgresql.create_replica.<name>] command. Default: ["basebackup"].
# create_replica_methods = ["pgbackrest", "basebackup"]
create_replica_methods = ["basebackup"]
# A replica creation or restore whose data directory did not grow and whose
# command wrote no line for this many ms is killed and the next method is
# tried; a slow copy that progresses is never cut. At least 1000.
# Default: 600000 (10 minutes).
clone_stall_timeout_ms = 600000

# PostgreSQL settings (names a-z, 0-9, '_', '.'): strings, integers, floats
# or booleans (written as on/off). Settings pgha manages itself
# (listen_addresses, port, primary_conninfo, ssl, ...) are refused.
# Default: none. From the environment:
# PGHA_POSTGRESQL__PARAMETERS='{max_connections = 200}' or
# PGHA_POSTGRESQL__PARAMETERS=max_connections=200,shared_buffers=256MB
[postgresql.parameters]
max_connections = 200
shared_buffers = "256MB"
# "pg_stat_statements.track" = "all"

# Patroni's callbacks, run after the fact in the background (never delaying
# failover) as `<command> <action> <role> <cluster>`, e.g.
# `/usr/local/bin/hook on_role_change primary pgha`; role is "primary" or
# "replica". One runs at a time: a new one kills the one still running
# (on_reload has its own slot). Output goes to pgha's log. Each is a command
# line or an argv array. Default: unset.
[postgresql.callbacks]
# After pgha started PostgreSQL.
# on_start = "/usr/local/bin/hook"
# After pgha stopped PostgreSQL.
# on_stop = "/usr/local/bin/hook"
# After a restart (`pgha ctl restart`).
# on_restart = "/usr/local/bin/hook"
# After pgha reloaded PostgreSQL's configuration.
# on_reload = "/usr/local/bin/hook"
# After a promotion (primary), and when a former primary runs again as a
# replica (replica).
# on_role_change = ["/usr/local/bin/hook", "--notify"]

# Replica creation commands (Patroni's create_replica_methods), one table
# per method named in create_replica_methods, run as os_user without a shell.
# Placeholders in every word: {data_dir} (the empty data directory to fill),
# {conninfo} (the leader, as the replication user), {member} (this node),
# {scope} (cluster.name). Exit 0 with a data directory = done. A
# "pgbackrest" method needs no table: its command defaults to
# `pgbackrest --stanza=... --pg1-path={data_dir} --delta restore --type=standby`.
# [postgresql.create_replica]
# [postgresql.create_replica.from_snapshot]
# command = "/usr/local/bin/restore-snapshot --to {data_dir} --node {member}"

# The pgBackRest repository of this cluster (PGHA_POSTGRESQL__PGBACKREST__<KEY>):
# archive_mode/archive_command (archive-push) and restore_command
# (archive-get) are rendered from it, and it serves the "pgbackrest" replica
# and bootstrap methods. Create the stanza once (`pgbackrest stanza-create`)
# and schedule backups from the primary (docs/operations.md). Default: unset.
# [postgresql.pgbackrest]
# The stanza. Default: cluster.name.
# stanza = "main"
# pgBackRest's configuration file (repository, retention). Default:
# pgBackRest's own, /etc/pgbackrest/pgbackrest.conf.
# config = "/etc/pgbackrest/pgbackrest.conf"
# The pgbackrest program. Default: "pgbackrest".
# bin = "pgbackrest"
# Render archive_mode = on and archive_command. Default: true.
# archive = true
# Render restore_command. Default: true.
# restore = true

# How the first member creates the cluster: "initdb", "pgbackrest" (restore
# the latest backup of [postgresql.pgbackrest]) or the name of a
# [postgresql.create_replica.<name>] command that restores a backup. A
# restore recovers (to the target, if one is set), promotes and leads; the
# other members join as usual. At most one recovery_target_*.
[postgresql.bootstrap]
# Default: "initdb".
method = "initdb"
# Recover up to this time. Default: unset (to the end of the archive).
# recovery_target_time = "2026-12-02 19:30:00+00"
# Recover up to this WAL position. Default: unset.
# recovery_target_lsn = "0/3000060"
# Recover up to this restore point (pg_create_restore_point). Default: unset.
# recovery_target_name = "before_migration"
# Stop just after (true) or just before (false) the target. Default: true.
recovery_target_inclusive = true
# How recovery fetches archived WAL. Default: pgBackRest's archive-get with
# [postgresql.pgbackrest]; required for a target without it.
# restore_command = "cp /archive/%f %p"

[ha]
# Never promote this node. Default: false.
nofailover = false
# Among equally suitable replicas the higher priority wins; may be negative.
# Default: 0.
failover_priority = 0
# Keep this node out of read-only load balancing. Default: false.
noloadbalance = false
# The following seven are written to the DCS by the first node and later
# changed with `pgha ctl`.
# Leader lease TTL in ms; at least 500. Default: 1200.
ttl_ms = 1200
# Period of the HA loop and of lease renewals in ms; at least 50 and at most
# ttl_ms / 2. Default: 250.
loop_wait_ms = 250
# A replica more than this many bytes of WAL behind is not promoted.
# Default: 1048576 (1 MiB).
maximum_lag_on_failover = 1048576
# How long a crashed primary may take to restart in place before it gives up
# the leader lease, in ms. Default: 10000.
primary_start_timeout_ms = 10000
# Synchronous replication: "off", "on" (synchronous_node_count standbys confirm
# every commit) or "quorum" (any synchronous_node_count of all healthy standbys
# do, so one slow standby cannot stall writes). Only a standby holding every
# acknowledged commit is promoted. Default: "off".
synchronous_mode = "off"
# With no synchronous standby left, block commits instead of replicating
# asynchronously. Default: false.
synchronous_mode_strict = false
# Standbys that confirm each commit in synchronous mode; at least 1. Default: 1.
synchronous_node_count = 1
# Patroni-compatible REST API for load balancers and monitoring (GET /primary,
# /replica, /health, /metrics, ...); read-only. Default: unset (disabled).
# rest_listen = "0.0.0.0:8008"
# Serve the REST API over HTTPS with this node's [tls] certificate (clients
# need the cluster CA; a client certificate is optional). Needs rest_listen and
# tls.plaintext = false. Default: false.
# rest_tls = true

# Free-form labels of this node, shown by `pgha ctl list`. Default: none.
# From the environment: PGHA_HA__TAGS=datacenter=dc1,rack=r1
[ha.tags]
# datacenter = "dc1"

# A standby cluster (disaster recovery site): the first member clones the remote
# primary instead of running initdb, the leader (the "standby leader") follows
# it read-only and the other members cascade from the leader. Written to the
# dynamic config by the first member; later `pgha ctl promote-cluster` (the
# cluster becomes a normal one) and `pgha ctl demote-cluster --host H --port P`.
# host and/or restore_command are required. Default: unset (a normal cluster).
# [ha.standby_cluster]
# host = "10.1.0.10"                    # the remote primary, or the remote edge's primary port
# port = 5432
# primary_slot_name = "dr_site"         # a slot on the remote (e.g. a permanent slot there)
# restore_command = "cp /archive/%f %p" # WAL from the remote's archive

[tls]
# true disables TLS entirely (trusted networks and tests only); ca, cert and
# key are then ignored. Default: false.
plaintext = false
# PEM CA certificate that signed every node's and client's certificate.
# Required unless plaintext = true.
ca = "/etc/pgha/tls/ca.crt"
# This node's PEM certificate (PostgreSQL serves it too, see
# postgresql.tls). Required unless plaintext = true.
cert = "/etc/pgha/tls/db1.crt"
# PEM private key for `cert`. Required unless plaintext = true.
key = "/etc/pgha/tls/db1.key"
# Peer certificates without a pgha role (issued before `pgha cert issue
# --role`): "allow" keeps their full rights (a warning per peer), "deny"
# refuses them. Default: "allow". See docs/security.md.
legacy_certificates = "allow"

[log]
# "human" or "json". Default: "human".
format = "human"
# tracing EnvFilter directive, e.g. "info" or "info,pgha=debug".
# Default: "info".
level = "info"
"#
);

const WITNESS: &str = concat!(
    r#"# pgha configuration for a witness (`pgha run --role witness`): a voting member of the
# embedded Raft DCS without PostgreSQL, so that two db nodes keep a quorum.
#
# Precedence: command-line flags > environment > this file > defaults.
# Any key can be set from the environment as PGHA_<SECTION>__<KEY>, e.g.
# PGHA_NODE__NAME=w1 or PGHA_DCS__PEERS=db1=10.0.0.1:7400,db2=10.0.0.2:7400

[cluster]
# Cluster name: lowercase letters, digits, '_' and '-'; the same on every
# node, edge and ctl of this cluster. Default: "pgha".
name = "pgha"

[node]
# This node's name (letters, digits, '.', '_', '-'); must match its entry in
# dcs.peers. Required, no default.
name = "w1"
# Directory for pgha's own state (Raft log and snapshots). Required, no default.
data_dir = "/var/lib/pgha"

[dcs]
# host:port the gRPC server (Raft + client API) binds. Required, no default.
listen = "0.0.0.0:7400"
# host:port others use to reach this node.
# Default: this node's address in `peers`.
# advertise = "10.0.0.3:7400"
# Initial voters as "name=host:port" (IPv6: "w1=[fd00::3]:7400"), this node
# included; the same list on every member. Used once to bootstrap the
# cluster. Names and addresses must be unique. Required.
peers = ["db1=10.0.0.1:7400", "db2=10.0.0.2:7400", "w1=10.0.0.3:7400"]
# host:port of DCS members for clients (edge, ctl); witnesses do not use it.
"#,
    dcs_members_tuning!(),
    r#"
[witness]
# host:port of the witness's HTTP endpoint: /metrics (Prometheus), /health
# (200 while its Raft core runs), /readiness (200 while it also knows a
# Raft leader); read-only. "" turns it off. Default: "0.0.0.0:8008" (an
# address in use is then logged, not fatal).
http_listen = "0.0.0.0:8008"

[tls]
# true disables TLS entirely (trusted networks and tests only); ca, cert and
# key are then ignored. Default: false.
plaintext = false
# PEM CA certificate that signed every node's and client's certificate.
# Required unless plaintext = true.
ca = "/etc/pgha/tls/ca.crt"
# This node's PEM certificate. Required unless plaintext = true.
cert = "/etc/pgha/tls/w1.crt"
# PEM private key for `cert`. Required unless plaintext = true.
key = "/etc/pgha/tls/w1.key"
# Peer certificates without a pgha role (issued before `pgha cert issue
# --role`): "allow" keeps their full rights (a warning per peer), "deny"
# refuses them. Default: "allow". See docs/security.md.
legacy_certificates = "allow"

[log]
# "human" or "json". Default: "human".
format = "human"
# tracing EnvFilter directive, e.g. "info" or "info,pgha=debug".
# Default: "info".
level = "info"
"#
);

const EDGE: &str = r#"# pgha configuration for an edge (`pgha run --role edge`): TCP proxy and VIP holder.
# An edge is a client of the DCS, not a member, so it has no data_dir,
# listen or Raft timing keys.
#
# Precedence: command-line flags > environment > this file > defaults.
# Any key can be set from the environment as PGHA_<SECTION>__<KEY>, e.g.
# PGHA_NODE__NAME=edge1 or PGHA_DCS__ENDPOINTS=10.0.0.1:7400,10.0.0.2:7400
# ([edge.vip] keys as PGHA_EDGE__VIP__<KEY>, e.g. PGHA_EDGE__VIP__PRIORITY=150)

[cluster]
# Cluster name: lowercase letters, digits, '_' and '-'; the same on every
# node, edge and ctl of this cluster. Default: "pgha".
name = "pgha"

[node]
# This edge's name (letters, digits, '.', '_', '-'). Required, no default.
name = "edge1"

[dcs]
# host:port of DCS members (db and witness nodes) to connect to; any one
# that answers is enough. Default: [] (the addresses in `peers`).
endpoints = ["10.0.0.1:7400", "10.0.0.2:7400", "10.0.0.3:7400"]
# Alternatively, the members' "name=host:port" list as on the db nodes;
# used only when `endpoints` is empty. Default: [].
# peers = ["db1=10.0.0.1:7400", "db2=10.0.0.2:7400", "w1=10.0.0.3:7400"]
# Timeout of DCS requests, in ms. Default: 2000.
request_timeout_ms = 2000

[edge]
# host:port for clients of the current primary only (the leader-key holder
# once it runs as primary); "" disables the port. Default: "0.0.0.0:5432".
primary_listen = "0.0.0.0:5432"
# host:port balanced round-robin over the streaming replicas (members tagged
# noloadbalance are skipped); "" disables it. Default: "0.0.0.0:5433".
replica_listen = "0.0.0.0:5433"
# host:port balanced over every running member; "" disables it.
# Default: "0.0.0.0:5434".
any_listen = "0.0.0.0:5434"
# host:port of the HTTP status page, /metrics and /health; "" disables it.
# Default: "0.0.0.0:8080".
status_listen = "0.0.0.0:8080"
# Client connections over all ports (sessions, and clients that have not
# sent their startup message yet), split into the ports' own caps below.
# Default: 1000.
max_sessions = 1000
# Each port's own cap, so a flood on one port cannot take another's slots;
# a client over its port's cap is refused at once ("too many connections
# through this edge port"). Unset: an even share of what the set caps leave
# of max_sessions (334, 333, 333 with all three ports). Default: unset.
# primary_max_sessions = 334
# replica_max_sessions = 333
# any_max_sessions = 333
# A new client must send its first protocol message (startup, SSL, GSS or
# cancel request) within this many ms or it is closed; no backend is dialled
# before it. From 100 to 600000. Default: 5000.
client_hello_timeout_ms = 5000
# While there is no primary (failover, switchover), new clients of the
# primary port wait this long (ms) for one before they are disconnected.
# Default: 5000.
primary_wait_ms = 5000
# Threads running the client sessions, each its own event loop (a session
# stays on the thread it was given at accept). 0: one per core. Default: 0.
session_threads = 0
# Replicas whose replay position lags more than this many bytes get no new
# sessions on the replica port. Default: unset (no limit).
# replica_max_lag_bytes = 16777216

[edge.vip]
# The virtual IPv4 address with its prefix length; held by at most one edge
# (the holder of the DCS `vip` lease), announced by gratuitous ARP. Needs
# CAP_NET_ADMIN and CAP_NET_RAW. Remove this section for no VIP.
address = "10.0.0.10/24"
# Interface the address is added to. Required with [edge.vip].
interface = "eth0"
# Edges with a higher priority try to take the VIP first. Default: 100.
priority = 100
# Take the VIP from a healthy holder of lower priority. Default: false.
preempt = false
# TTL of the VIP lease in ms: the VIP leaves a dead edge about this long after
# it died. Renewed on a quorum of DCS voters every ttl/4, so a DCS leader
# election does not move it; use more on hosts that can stall for ttl/2.
# At least 300. Default: 400.
# ttl_ms = 400

[tls]
# true disables TLS entirely (trusted networks and tests only); ca, cert and
# key are then ignored. Default: false.
plaintext = false
# PEM CA certificate that signed every node's and client's certificate.
# Required unless plaintext = true.
ca = "/etc/pgha/tls/ca.crt"
# This edge's PEM client certificate. Required unless plaintext = true.
cert = "/etc/pgha/tls/edge1.crt"
# PEM private key for `cert`. Required unless plaintext = true.
key = "/etc/pgha/tls/edge1.key"

[log]
# "human" or "json". Default: "human".
format = "human"
# tracing EnvFilter directive, e.g. "info" or "info,pgha=debug".
# Default: "info".
level = "info"
"#;
