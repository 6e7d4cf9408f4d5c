//! Tests of [`Config::read_secret`].

use super::*;

#[test]
fn read_secret_cases() {
    const SECRET: &str = "s3cr3t-Passw0rd";
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    };
    let key = "postgresql.superuser_password_file";
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("plain", SECRET, Some(SECRET)),
        ("newline", &format!("{SECRET}\n"), Some(SECRET)),
        ("crlf", &format!("{SECRET}\r\nsecond line\n"), Some(SECRET)),
        ("spaces", &format!(" {SECRET} \n"), Some(&format!(" {SECRET} "))),
        ("empty", "", None),
        ("blank_first_line", &format!("\n{SECRET}\n"), None),
    ];
    for (name, text, want) in cases {
        let path = write(name, text);
        match (Config::read_secret(key, &path), want) {
            (Ok(got), Some(want)) => assert_eq!(got, *want, "{name}"),
            (Err(e @ ConfigError::Secret { .. }), None) => {
                let message = e.to_string();
                assert!(
                    message.contains(key) && message.contains(&*path.to_string_lossy()),
                    "{message}"
                );
                assert!(message.contains("empty"), "{message}");
                assert!(!message.contains(SECRET), "{name}: secret leaked: {message}");
            }
            (other, _) => panic!("{name}: {other:?}"),
        }
    }

    let missing = dir.path().join("missing");
    match Config::read_secret("postgresql.replication_password_file", &missing) {
        Err(ConfigError::Secret { key, path, message }) => {
            assert_eq!(key, "postgresql.replication_password_file");
            assert_eq!(path, missing);
            assert!(message.contains("No such file"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let err = Config::read_secret(key, &missing).expect_err("missing").to_string();
    assert!(err.starts_with(&format!("{key} ({})", missing.display())), "{err}");

    // A non-UTF-8 file is refused without echoing its bytes.
    let path = dir.path().join("binary");
    std::fs::write(&path, b"s3cr3t\xff\n").expect("write");
    let err = Config::read_secret(key, &path).expect_err("not UTF-8").to_string();
    assert!(!err.contains("s3cr3t"), "{err}");

    // World-readable files are read (with a warning), not refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let path = write("open", "pw\n");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(Config::read_secret(key, &path).expect("readable"), "pw");
    }
}
