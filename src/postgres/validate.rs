//! Pure validation of [`PgSettings`] before anything touches the system.

use std::path::Path;

use super::names::is_valid_role_name;
use super::{PgError, PgSettings};

/// Longest unix socket path (sun_path is 108 bytes including the NUL).
const MAX_SOCKET_PATH: usize = 107;

fn has_control(text: &str) -> bool {
    text.chars().any(|c| c.is_control())
}

fn absolute(what: &str, path: &Path) -> Result<(), PgError> {
    if !path.is_absolute() {
        return Err(PgError::Settings(format!(
            "{what} {} must be an absolute path",
            path.display()
        )));
    }
    if has_control(&path.to_string_lossy()) {
        return Err(PgError::Settings(format!(
            "{what} {:?} contains control characters",
            path
        )));
    }
    Ok(())
}

/// Checks names, paths, port and passwords (which must fit on one line of a passfile or pwfile).
/// Never echoes a password.
pub fn validate_settings(s: &PgSettings) -> Result<(), PgError> {
    if s.name.is_empty() || has_control(&s.name) {
        return Err(PgError::Settings(format!(
            "member name {:?} must be non-empty printable text",
            s.name
        )));
    }
    for (what, name) in [
        ("os_user", &s.os_user),
        ("superuser", &s.superuser),
        ("replication_user", &s.replication_user),
    ] {
        if !is_valid_role_name(name) {
            return Err(PgError::Settings(format!(
                "{what} {name:?} must be 1-63 characters of [A-Za-z0-9_.-]"
            )));
        }
    }
    absolute("data_dir", &s.data_dir)?;
    absolute("socket_dir", &s.socket_dir)?;
    absolute("bin_dir", &s.bin_dir)?;
    if let Some(log) = &s.log_file {
        absolute("log_file", log)?;
    }
    if s.data_dir.parent().is_none() {
        return Err(PgError::Settings("data_dir must not be the root directory".into()));
    }
    let socket = s.socket_dir.join(format!(".s.PGSQL.{}", s.port));
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(PgError::Settings(format!(
            "socket path {} is too long for a unix socket",
            socket.display()
        )));
    }
    if s.port == 0 {
        return Err(PgError::Settings("port must not be 0".into()));
    }
    if s.listen_host.trim().is_empty() || has_control(&s.listen_host) {
        return Err(PgError::Settings(format!(
            "listen_host {:?} must be non-empty printable text",
            s.listen_host
        )));
    }
    for (what, pw) in [
        ("superuser_password", &s.superuser_password),
        ("replication_password", &s.replication_password),
    ] {
        if pw
            .as_deref()
            .is_some_and(|p| p.is_empty() || p.contains(['\n', '\r', '\0']))
        {
            return Err(PgError::Settings(format!(
                "{what} must be non-empty and fit on one line"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> PgSettings {
        PgSettings::new(
            "db1",
            Path::new("/usr/bin"),
            Path::new("/var/lib/pg/data"),
            Path::new("/run/pg"),
            5432,
        )
    }

    #[test]
    fn accepts_defaults() {
        validate_settings(&ok()).expect("defaults are valid");
    }

    #[test]
    fn debug_redacts_passwords() {
        let mut s = ok();
        s.superuser_password = Some("top-secret-1".into());
        s.replication_password = Some("top-secret-2".into());
        let text = format!("{s:?}");
        assert!(!text.contains("top-secret") && text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn rejects_bad_settings() {
        type Edit = fn(&mut PgSettings);
        let cases: &[(&str, Edit)] = &[
            ("member name", |s| s.name.clear()),
            ("os_user", |s| s.os_user = "bad user".into()),
            ("superuser", |s| s.superuser = "a\"b".into()),
            ("replication_user", |s| s.replication_user.clear()),
            ("data_dir", |s| s.data_dir = "rel/data".into()),
            ("socket_dir", |s| s.socket_dir = "run".into()),
            ("root directory", |s| s.data_dir = "/".into()),
            ("too long", |s| s.socket_dir = format!("/{}", "s".repeat(100)).into()),
            ("port", |s| s.port = 0),
            ("listen_host", |s| s.listen_host = "a\nb".into()),
            ("replication_password", |s| {
                s.replication_password = Some("sec\nret".into())
            }),
            ("superuser_password", |s| s.superuser_password = Some(String::new())),
        ];
        for (want, edit) in cases {
            let mut s = ok();
            edit(&mut s);
            let err = validate_settings(&s).expect_err(want).to_string();
            assert!(err.contains(want), "{want}: {err}");
            assert!(!err.contains("sec\nret"), "password echoed: {err}");
        }
    }
}
