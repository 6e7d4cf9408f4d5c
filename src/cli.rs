//! Command-line definitions (clap) and nothing else.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Role;

/// pgha: PostgreSQL high availability in one binary (embedded Raft DCS, supervisor, edge proxy, ctl).
#[derive(Debug, Parser)]
#[command(name = "pgha", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: `--role db` (DCS voter + PostgreSQL supervisor), `witness` (DCS voter only) or `edge`.
    Run(RunArgs),
    /// Cluster CA and node certificates (replaces the openssl steps).
    #[command(subcommand)]
    Cert(CertCommand),
    /// Example configs and validation.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inspect and operate a cluster.
    #[command(after_help = CTL_AFTER_HELP)]
    Ctl(CtlArgs),
    /// Start a local cluster on 127.0.0.1 for a first look (runs until Ctrl-C).
    Demo(DemoArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Print a shell completion script (bash: `pgha completions bash > /etc/bash_completion.d/pgha`).
    Completions {
        #[arg(value_enum)]
        shell: ShellArg,
    },
    /// The manual page: pgha(1) on stdout, or with `--dir` every page (pgha.1, pgha-run.1, pgha-ctl.1, ...).
    Man {
        /// Write all pages into this directory instead.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Internal: the fencing process a db node starts beside its primary (stops PostgreSQL when the lease deadline
    /// in DEADLINE_FILE passes).
    #[command(hide = true)]
    Fence {
        #[arg(long)]
        deadline_file: PathBuf,
        #[arg(long)]
        pgdata: PathBuf,
    },
    /// Internal: the fencing process an edge starts while it holds the VIP (removes ADDRESS from INTERFACE when the
    /// lease deadline in DEADLINE_FILE passes).
    #[command(hide = true)]
    FenceVip {
        #[arg(long)]
        deadline_file: PathBuf,
        /// ADDRESS/PREFIX, e.g. 10.0.0.10/24.
        #[arg(long)]
        address: String,
        #[arg(long)]
        interface: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Db,
    Witness,
    Edge,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Db => Role::Db,
            RoleArg::Witness => Role::Witness,
            RoleArg::Edge => Role::Edge,
        }
    }
}

/// Shells `pgha completions` writes scripts for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ShellArg {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum LogFormatArg {
    #[default]
    Human,
    Json,
}

/// Logging flags shared by long-running commands.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log format (overrides `log.format`).
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormatArg>,
    /// Log filter, e.g. `info` or `pgha=debug` (overrides `log.level`; RUST_LOG wins over both).
    #[arg(long)]
    pub log_level: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Role of this node.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Config file (TOML). Optional: every key can come from PGHA_<SECTION>__<KEY> variables and flags.
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    /// Node name (`node.name`).
    #[arg(long)]
    pub name: Option<String>,
    /// State directory (`node.data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// gRPC listen address (`dcs.listen`).
    #[arg(long)]
    pub listen: Option<String>,
    /// Address other members dial (`dcs.advertise`).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Initial voters, comma-separated `name=host:port` (`dcs.peers`).
    #[arg(long, value_delimiter = ',')]
    pub peers: Option<Vec<String>>,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Create the cluster CA (ca.pem, ca-key.pem) in DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Cluster name written into the CA's subject.
        #[arg(long, default_value = "pgha")]
        cluster: String,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// Overwrite an existing CA (every node certificate must then be re-issued).
        #[arg(long)]
        force: bool,
    },
    /// Issue a node (or client) certificate signed by the CA in DIR: NAME.pem and NAME-key.pem, carrying its role
    /// and name (URI SAN pgha://CLUSTER/ROLE/NAME). Re-running it renews (or re-issues a certificate without a role).
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// What the certificate may do (required): member (a db node), witness (a DCS-only member), edge (an edge
        /// proxy), admin (`pgha ctl` for operators), monitor (read-only).
        #[arg(long, value_enum)]
        role: Option<CertRoleArg>,
        /// The node's `node.name` (db, witness, edge: peers check that a node speaks for itself).
        #[arg(long)]
        name: String,
        /// Cluster in the identity (default: the one the CA names, `cert init --cluster`).
        #[arg(long)]
        cluster: Option<String>,
        /// IP address SANs (repeatable).
        #[arg(long)]
        ip: Vec<IpAddr>,
        /// DNS name SANs (repeatable); NAME is always included.
        #[arg(long)]
        dns: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Show a certificate: subject, SANs, role, name, cluster, validity.
    Show {
        /// PEM certificate file.
        file: PathBuf,
    },
}

/// Certificate roles (`pgha cert issue --role`).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CertRoleArg {
    Member,
    Witness,
    Edge,
    Admin,
    Monitor,
}

impl From<CertRoleArg> for crate::identity::CertRole {
    fn from(r: CertRoleArg) -> crate::identity::CertRole {
        use crate::identity::CertRole;
        match r {
            CertRoleArg::Member => CertRole::Member,
            CertRoleArg::Witness => CertRole::Witness,
            CertRoleArg::Edge => CertRole::Edge,
            CertRoleArg::Admin => CertRole::Admin,
            CertRoleArg::Monitor => CertRole::Monitor,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a complete, commented config for a role.
    Example {
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Check a config file (and the environment overrides); prints every problem, exit 1 if any.
    Validate {
        file: PathBuf,
        /// Role the file is for.
        #[arg(long, value_enum, default_value = "db")]
        role: RoleArg,
    },
}

#[derive(Debug, Clone, Copy, Default, ValueEnum, PartialEq, Eq)]
pub enum Output {
    #[default]
    Table,
    Json,
}

/// What `pgha ctl --help` and pgha-ctl(1) say about the config file and exit codes.
pub const CTL_AFTER_HELP: &str = "\
Config file: -c FILE, else $PGHA_CTL_CONFIG, else /etc/pgha/ctl.toml, else ~/.config/pgha/ctl.toml (the first that \
exists); without any, --endpoints (or PGHA_DCS__ENDPOINTS) with PGHA_TLS__* settings.

Exit codes: 0 success; 1 failure (the error is printed); 2 command-line usage error. `ctl health` and `ctl members` \
use 0 healthy, 1 degraded, 2 critical (no leader / no quorum), 3 unknown (the DCS cannot be reached).";

/// What `ctl health --help` and pgha-ctl-health(1) say about its checks and exit codes.
pub const HEALTH_AFTER_HELP: &str = "\
Checks: dcs_quorum (a majority of voters answers and a Raft leader exists), dcs_members (every DCS member answers), \
leader (a member holds the leader key, i.e. its lease, and runs PostgreSQL as primary), postgresql (every member's \
PostgreSQL runs), replication (every replica streams), lag (within maximum_lag_on_failover).

Exit codes (the Nagios plugin convention): 0 healthy; 1 degraded (a member or replica needs attention); 2 critical \
(no leader holding its lease, leader's PostgreSQL not primary, or no DCS quorum); 3 unknown (no DCS member answers, \
or the config is unusable).";

/// What `ctl members --help` says about its exit codes.
pub const MEMBERS_AFTER_HELP: &str = "\
Exit codes: 0 every member answers; 1 a member does not answer (degraded); 2 no majority of voters answers or there \
is no Raft leader; 3 no member answers at all.";

#[derive(Debug, Args)]
pub struct CtlArgs {
    /// Config file with `[dcs] endpoints` (or peers) and `[tls]` (default: $PGHA_CTL_CONFIG, /etc/pgha/ctl.toml,
    /// ~/.config/pgha/ctl.toml).
    #[arg(short = 'c', long = "config", global = true)]
    pub config: Option<PathBuf>,
    /// DCS members to talk to, comma-separated host:port (overrides `dcs.endpoints`).
    #[arg(long, value_delimiter = ',', global = true)]
    pub endpoints: Option<Vec<String>>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table", global = true)]
    pub output: Output,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// Which members a connection string targets.
#[derive(Debug, Clone, Copy, Default, ValueEnum, PartialEq, Eq)]
pub enum DsnRole {
    #[default]
    Primary,
    Replica,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// The PostgreSQL cluster: members, roles, states, timelines, LSNs and lag (what `patronictl list` shows).
    List {
        /// Also list the leader's replication slots (pgha's and others', with the WAL they retain).
        #[arg(long)]
        slots: bool,
        /// Redraw every SECONDS (default 2) until Ctrl-C; a terminal is cleared, otherwise snapshots are separated.
        #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2")]
        watch: Option<f64>,
    },
    /// Cluster health, one line per check; the exit code says healthy / degraded / critical / unknown.
    #[command(after_help = HEALTH_AFTER_HELP, long_about = "Cluster health: DCS quorum and members, the leader and \
its lease, every member's PostgreSQL, replicas streaming within maximum_lag_on_failover. One line per check; the \
exit code is the worst: 0 healthy, 1 degraded, 2 critical, 3 unknown.")]
    Health,
    /// Planned switchover: the leader checkpoints, stops cleanly and hands over to the candidate.
    Switchover {
        /// The current leader (checked).
        #[arg(long)]
        leader: Option<String>,
        /// The member to promote (default: the most advanced streaming replica).
        #[arg(long)]
        candidate: Option<String>,
        /// Not before this time (RFC 3339, e.g. 2026-11-22T03:00:00Z).
        #[arg(long)]
        scheduled: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        force: bool,
        /// Drop a pending (scheduled) switchover instead.
        #[arg(long, conflicts_with_all = ["leader", "candidate", "scheduled"])]
        cancel: bool,
    },
    /// Manual failover to a candidate, also when there is no live leader (and in maintenance mode).
    Failover {
        #[arg(long)]
        candidate: String,
        #[arg(long)]
        force: bool,
    },
    /// The dynamic cluster configuration (ttl, loop_wait, maximum_lag_on_failover, ...).
    ShowConfig,
    /// Change the dynamic configuration: in $EDITOR (no flag), `--set key=value`, `--pg name=value` or `--apply FILE`;
    /// shown as a diff and confirmed; invalid values are refused before anything is stored.
    EditConfig {
        /// Replace the whole configuration with this TOML or JSON file (`-` = stdin, needs --force); --set and --pg
        /// apply on top.
        #[arg(long, value_name = "FILE")]
        apply: Option<PathBuf>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// A cluster-wide PostgreSQL parameter, `name=value` (repeatable; `name=` removes it).
        #[arg(long = "pg", value_name = "NAME=VALUE")]
        pg: Vec<String>,
        /// A permanent replication slot (repeatable): `name=physical`, `name=logical:PLUGIN:DATABASE`, or `name=` to
        /// remove it (pgha then drops it once inactive).
        #[arg(long = "slot", value_name = "NAME=SPEC")]
        slot: Vec<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        force: bool,
    },
    /// pgha's version, and the version each member publishes.
    Version,
    /// The replication tree: the leader first, each replica indented under the member it streams from.
    Topology,
    /// Restart PostgreSQL on one member or all (`--pending`: only where a parameter change needs it).
    Restart {
        name: Option<String>,
        #[arg(long, conflicts_with = "name")]
        all: bool,
        #[arg(long)]
        pending: bool,
        #[arg(long, value_enum)]
        role: Option<DsnRole>,
    },
    /// Reload PostgreSQL's configuration on one member or all.
    Reload { name: Option<String> },
    /// Wipe a replica and clone it again from the leader (refused on the leader).
    Reinit {
        name: String,
        /// Wait until it streams again, showing what it does.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds (the basebackup of a large database takes long).
        #[arg(long, value_name = "SECONDS", default_value_t = 600, requires = "wait")]
        timeout: u64,
    },
    /// Major upgrade of the whole cluster to the PostgreSQL binaries in --bin-dir: checks (pg_upgrade --check), pause,
    /// replicas stopped, the leader stopped cleanly and upgraded with pg_upgrade, started, replicas created again,
    /// resume. Each step is printed as it runs; `ctl list` shows where a failed one stopped.
    Upgrade {
        /// The new version's bin directory (absolute; the same path on every member).
        #[arg(long, value_name = "DIR")]
        bin_dir: PathBuf,
        /// pg_upgrade --link (the default): hard links, seconds for any size.
        #[arg(long, conflicts_with_all = ["clone", "copy"])]
        link: bool,
        /// pg_upgrade --clone: reflinks (a copy-on-write file system), the old data stays usable.
        #[arg(long, conflicts_with = "copy")]
        clone: bool,
        /// pg_upgrade --copy: a full copy, the old data stays usable.
        #[arg(long)]
        copy: bool,
        /// Only the checks (new binaries on every member, pg_upgrade --check on the leader): nothing changes.
        #[arg(long)]
        check: bool,
        /// Give up a step after this many seconds (creating the replicas again takes long on a large database).
        #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
        timeout: u64,
    },
    /// Maintenance mode on: no automatic promotion or demotion until `resume`.
    Pause {
        /// Wait until every member reports it.
        #[arg(long)]
        wait: bool,
    },
    /// Maintenance mode off.
    Resume {
        /// Wait until every member reports it.
        #[arg(long)]
        wait: bool,
    },
    /// DR drill: a standby cluster becomes a normal one (its standby leader promotes; its edges route writes).
    PromoteCluster {
        /// Give up waiting for the promotion after this many seconds (the setting stays removed).
        #[arg(long, value_name = "SECONDS", default_value_t = 120)]
        timeout: u64,
    },
    /// Make this cluster a standby cluster of a remote primary: its leader stops being writable, is rewound from the
    /// remote if its history diverged, then follows it; its replicas cascade from it.
    DemoteCluster {
        /// The remote primary's host (e.g. the other cluster's edge primary port address).
        #[arg(long)]
        host: Option<String>,
        /// The remote primary's port (default 5432).
        #[arg(long)]
        port: Option<u16>,
        /// A replication slot on the remote primary to stream through.
        #[arg(long)]
        primary_slot_name: Option<String>,
        /// restore_command for WAL from the remote's archive (with or without --host).
        #[arg(long)]
        restore_command: Option<String>,
        /// Give up waiting for the leader after this many seconds (the setting stays stored).
        #[arg(long, value_name = "SECONDS", default_value_t = 300)]
        timeout: u64,
    },
    /// Timeline history: one line per promotion (timeline, LSN, reason, time, new leader).
    History,
    /// A libpq connection string (multi-host, target_session_attrs) for the primary or the replicas.
    Dsn {
        #[arg(long, value_enum, default_value = "primary")]
        role: DsnRole,
    },
    /// DCS members: voters and learners, Raft leader, term, log/applied index, reachability and round trip.
    #[command(after_help = MEMBERS_AFTER_HELP)]
    Members,
    /// Change DCS membership.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Read and repair DCS keys (like etcdctl).
    #[command(subcommand)]
    Dcs(DcsCommand),
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Add a member: it joins as a learner, catches up, then becomes a voter.
    Add { name: String, addr: String },
    /// Remove a member.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub enum DcsCommand {
    /// Linearizable read of a key or prefix.
    Get {
        key: String,
        #[arg(long)]
        prefix: bool,
    },
    /// Write a key.
    Put { key: String, value: String },
    /// Delete a key or prefix.
    Del {
        key: String,
        #[arg(long)]
        prefix: bool,
    },
    /// Stream changes of a key or prefix.
    Watch {
        key: String,
        #[arg(long)]
        prefix: bool,
        /// Start from this revision (default: changes from now on).
        #[arg(long, default_value_t = 0)]
        rev: i64,
        /// Stop after this many events (default: run until interrupted).
        #[arg(long)]
        count: Option<usize>,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for configs, certificates, data and logs (default: a new temporary directory, removed at exit).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Number of DCS members.
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Run without TLS (default: a CA and certificates are made and every connection is mutual TLS).
    #[arg(long)]
    pub plaintext: bool,
    /// Only DCS members (witness role), no PostgreSQL.
    #[arg(long)]
    pub witness: bool,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// DCS latency, throughput, leader-loss recovery and keepalive footprint on a local 3-member cluster.
    Dcs(BenchDcsArgs),
    /// Failover write gap, leader change, VIP move and lost acknowledged writes in the six-host topology (network
    /// namespaces, root), or on a loopback 3-node cluster with `--local`.
    Failover(BenchFailoverArgs),
    /// pgbench straight to the primary, through an edge (and HAProxy with `--haproxy`), alternating, on a local
    /// one-node cluster.
    Proxy(BenchProxyArgs),
    /// A long seeded fault schedule in the six-host topology (network namespaces, root), the invariants checked after
    /// every step; exits non-zero on any violation.
    Chaos(BenchChaosArgs),
    /// The six-host topology under a CPU-saturating pgbench load through the VIP and no fault (network namespaces,
    /// root): any Raft leader change, HA leader change or VIP move is spurious; exits non-zero on any.
    Soak(BenchSoakArgs),
}

#[derive(Debug, Args)]
pub struct BenchSoakArgs {
    /// How long the load runs.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub minutes: u64,
    /// How long the load runs, in seconds (overrides --minutes; for short runs).
    #[arg(long, value_parser = clap::value_parser!(u64).range(5..=86_400))]
    pub seconds: Option<u64>,
    /// pgbench clients (`-c`); the default saturates two cores.
    #[arg(long, default_value_t = 16, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    pub clients: usize,
    /// pgbench scale (`-i -s`).
    #[arg(long, default_value_t = 10)]
    pub scale: u32,
    /// Synchronous replication: off, on or quorum.
    #[arg(long, default_value = "quorum", value_parser = ["off", "on", "quorum"])]
    pub sync: String,
    /// The cluster's leader TTL (ms); default: pgha's default.
    #[arg(long, value_parser = clap::value_parser!(u64).range(500..=600_000))]
    pub ttl_ms: Option<u64>,
    /// The VIP's TTL (`edge.vip.ttl_ms`); default: pgha's default.
    #[arg(long, value_parser = clap::value_parser!(u64).range(200..=600_000))]
    pub vip_ttl_ms: Option<u64>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Keep configs, data and logs here instead of a removed temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchChaosArgs {
    /// Steps of the schedule (one or two faults each, healed, then checked).
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Seed of the schedule: the same seed gives the same faults (default: from the clock, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Replication: `quorum` (synchronous; a lost acknowledged write is a violation) or `off` (asynchronous; lost
    /// writes are only counted).
    #[arg(long, default_value = "quorum", value_parser = ["off", "quorum"])]
    pub sync: String,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Keep the cluster's files and logs in this directory (default: a temporary one; logs are copied out on failure).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The VIP's TTL (`edge.vip.ttl_ms`); default: pgha's default.
    #[arg(long, value_parser = clap::value_parser!(u64).range(200..=600_000))]
    pub vip_ttl_ms: Option<u64>,
}

/// A pgbench workload of `bench proxy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProxyWorkload {
    /// `-S -M prepared` on long-lived connections.
    SelectOnly,
    /// `-S -C`: a new connection per transaction.
    ConnectPerTransaction,
    /// pgbench's default TPC-B-like mix.
    TpcbLike,
}

/// A fault injected by `bench failover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// SIGKILL the primary's pgha and PostgreSQL.
    PrimaryCrash,
    /// SIGKILL only PostgreSQL on the primary (pgha restarts it in place).
    PostgresCrash,
    /// SIGTERM the primary's pgha (clean handover).
    Sigterm,
    /// Planned switchover to the best streaming replica (`ctl switchover`).
    Switchover,
    /// Cut the primary host's link (six-host mode).
    PrimaryPartition,
    /// SIGSTOP the primary's pgha for 2 x ttl, then SIGCONT (six-host mode).
    PrimaryFreeze,
    /// SIGKILL every process of the VIP holder and take its link down, like a power-off (six-host mode).
    EdgeCrash,
    /// Cut the VIP holder's link (six-host mode).
    EdgePartition,
}

#[derive(Debug, Args)]
pub struct BenchFailoverArgs {
    /// Scenarios to run (repeatable; default: all).
    #[arg(long, value_enum)]
    pub scenario: Vec<Scenario>,
    /// Runs per scenario.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also write an HTML report into this directory: `index.html` (the summary, a link per run) and one page per
    /// run with its acknowledged writes over time, the fault and the detect / elect / promote / route / VIP markers.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Keep the cluster's files in this directory (default: a temporary one).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Synchronous replication during the runs: `on` or `quorum` (default: asynchronous).
    #[arg(long, value_parser = ["on", "quorum"])]
    pub sync: Option<String>,
    /// Loopback 3-node cluster instead of the six-host topology (no root needed; db scenarios only).
    #[arg(long)]
    pub local: bool,
    /// Also read through the VIP's replica port (port 5433) during every run and report its longest pause.
    #[arg(long)]
    pub reader: bool,
    /// Leader lease TTL of the cluster under test (`[ha] ttl_ms`; default: pgha's default, 1200).
    #[arg(long, value_parser = clap::value_parser!(u64).range(500..=600_000))]
    pub ttl_ms: Option<u64>,
    /// VIP lease TTL of the edges (`[edge.vip] ttl_ms`; default: pgha's default, 300).
    #[arg(long, value_parser = clap::value_parser!(u64).range(200..=600_000))]
    pub vip_ttl_ms: Option<u64>,
}

#[derive(Debug, Args)]
pub struct BenchProxyArgs {
    /// pgbench clients (`-c`).
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Seconds per pgbench run (`-T`).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// pgbench scale factor for `-i`.
    #[arg(long, default_value_t = 10)]
    pub scale: u32,
    /// Rounds per workload (each runs every route, in rotating order); the table shows medians.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Workloads to run, in this order (repeatable; default: all three).
    #[arg(long = "workload", value_enum)]
    pub workloads: Vec<ProxyWorkload>,
    /// Also measure through HAProxy in TCP mode in front of the same primary (skipped, with a note, when haproxy
    /// is not installed).
    #[arg(long)]
    pub haproxy: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Keep the cluster's files in this directory (default: a temporary one).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchDcsArgs {
    /// Puts per measurement.
    #[arg(long, default_value_t = 2000)]
    pub ops: usize,
    /// Lease keepalives for the footprint measurement.
    #[arg(long, default_value_t = 100_000)]
    pub keepalives: usize,
    /// Leader kills to measure recovery over.
    #[arg(long, default_value_t = 5)]
    pub kills: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Use mutual TLS between members and clients (default: plaintext, to measure Raft itself).
    #[arg(long)]
    pub tls: bool,
    /// Keep the cluster's configs, data and logs in this directory (default: a temporary one, removed at exit).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}
