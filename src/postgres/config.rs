//! [`Postgres::write_config`]: renders and atomically writes the managed configuration files.

use std::path::PathBuf;

use super::files::{self, PlannedFile};
use super::names::is_valid_slot_name;
use super::render::{self, MANAGED_CONF, TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE};
use super::{ConfRole, PgError, PgSettings, Postgres};

/// Mode of the configuration files pgha writes into PGDATA (as initdb does).
const CONF_MODE: u32 = 0o600;

/// Files outside PGDATA used by clients run as the OS user (blocking: reads the CA): the 0600 passfile with the
/// replication user's password, and the copy of the TLS CA; each absent when not configured.
fn client_files(s: &PgSettings) -> Result<Vec<PlannedFile>, PgError> {
    let pass = s
        .replication_password
        .as_ref()
        .map(|pw| render::passfile(&s.replication_user, pw).into_bytes());
    let ca = match &s.tls {
        Some(t) => Some(std::fs::read(&t.ca).map_err(PgError::io("reading the TLS CA", &t.ca))?),
        None => None,
    };
    Ok(vec![
        PlannedFile {
            path: s.passfile(),
            contents: pass,
            mode: 0o600,
        },
        PlannedFile {
            path: s.client_ca_file(),
            contents: ca,
            mode: 0o644,
        },
    ])
}

impl Postgres {
    /// The passfile path in use (None without a replication password).
    pub(crate) fn passfile_path(&self) -> Option<PathBuf> {
        self.settings
            .replication_password
            .as_ref()
            .map(|_| self.settings.passfile())
    }

    /// Writes (or removes) the client files; returns the passfile path when there is one.
    pub(crate) async fn write_client_files(&self) -> Result<Option<PathBuf>, PgError> {
        let s = self.settings.clone();
        let owner = self.run_as.owner();
        files::blocking(move || files::apply_files(&client_files(&s)?, owner)).await?;
        Ok(self.passfile_path())
    }

    /// Configures the instance as `role`: `pgha.conf` (managed parameters, then the user's), exactly one
    /// `include 'pgha.conf'` at the end of `postgresql.conf`, `pg_hba.conf`, `pg_ident.conf`, `standby.signal`
    /// (present for a replica or standby), the passfile and the TLS file copies. Writes are atomic (temporary file
    /// and rename), 0600 and owned by the OS user. Returns whether anything changed: the caller then reloads,
    /// or restarts when `standby.signal` or a restart-only parameter changed (see `PgStatus::pending_restart`).
    pub async fn write_config(&self, role: &ConfRole) -> Result<bool, PgError> {
        const STEP: &str = "writing the configuration";
        let mut effective = self.effective_settings();
        effective.major = self.data_major();
        let s = &effective;
        let dir = s.data_dir.clone();
        if !dir.join("PG_VERSION").is_file() {
            return Err(PgError::DataDir {
                step: STEP,
                path: dir,
                reason: "not an initialized data directory".into(),
            });
        }
        if let ConfRole::Replica { slot: Some(slot), .. } | ConfRole::Remote { slot: Some(slot), .. } = role {
            if !is_valid_slot_name(slot) {
                return Err(PgError::Settings(format!(
                    "replication slot name {slot:?} is not [a-z0-9_]{{1,63}}"
                )));
            }
        }
        let passfile = self.passfile_path();
        let (conf, mut warnings) = render::pgha_conf(s, role, passfile.as_deref());
        let (hba, hba_warnings) = render::pg_hba(s);
        warnings.extend(hba_warnings);
        let ident = render::pg_ident(&[&self.run_as.pgha_user, &self.run_as.user.name], &s.superuser);
        let standby = matches!(
            role,
            ConfRole::Replica { .. } | ConfRole::Standby | ConfRole::Remote { .. }
        )
        .then(Vec::new);
        let settings = s.clone();
        let owner = self.run_as.owner();
        let changed = files::blocking(move || {
            let main = dir.join("postgresql.conf");
            let current = std::fs::read_to_string(&main).map_err(PgError::io("reading postgresql.conf", &main))?;
            let file = |name: &str, contents: Option<Vec<u8>>| PlannedFile {
                path: dir.join(name),
                contents,
                mode: CONF_MODE,
            };
            let mut plan = vec![
                file(MANAGED_CONF, Some(conf.into_bytes())),
                file("postgresql.conf", Some(render::ensure_include(&current).into_bytes())),
                file("pg_hba.conf", Some(hba.into_bytes())),
                file("pg_ident.conf", Some(ident.into_bytes())),
                file("standby.signal", standby),
            ];
            plan.extend(client_files(&settings)?);
            let read = |p: &PathBuf| std::fs::read(p).map_err(PgError::io("reading a TLS file", p));
            let (cert, key, ca) = match &settings.tls {
                Some(t) => (Some(read(&t.cert)?), Some(read(&t.key)?), Some(read(&t.ca)?)),
                None => (None, None, None),
            };
            plan.extend([
                file(TLS_CERT_FILE, cert),
                file(TLS_KEY_FILE, key),
                file(TLS_CA_FILE, ca),
            ]);
            files::apply_files(&plan, owner)
        })
        .await?;
        if changed {
            for w in &warnings {
                tracing::warn!(member = %s.name, "{w}");
            }
            tracing::info!(member = %s.name, role = ?role, "PostgreSQL configuration written");
        }
        Ok(changed)
    }
}
