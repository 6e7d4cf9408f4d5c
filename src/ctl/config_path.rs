//! Which config file `pgha ctl` reads when `-c` is not given (pure): `$PGHA_CTL_CONFIG`, `/etc/pgha/ctl.toml`,
//! `~/.config/pgha/ctl.toml`, in that order; the error lists every place tried.

use std::path::{Path, PathBuf};

/// The environment variable naming ctl's config file.
pub const ENV: &str = "PGHA_CTL_CONFIG";
/// The system-wide default.
pub const SYSTEM: &str = "/etc/pgha/ctl.toml";

/// No config file was found: every place tried, in order.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "no ctl config found (tried: {}); give -c FILE, set {ENV}, or pass --endpoints (plaintext or PGHA_TLS__* \
     settings)",
    tried.join(", ")
)]
pub struct NotFound {
    pub tried: Vec<String>,
}

/// What the resolution looks at, so that it stays pure.
pub struct Lookup<'a> {
    /// `-c FILE`.
    pub flag: Option<&'a Path>,
    /// `$PGHA_CTL_CONFIG` (empty counts as unset).
    pub env: Option<&'a str>,
    /// `$HOME`.
    pub home: Option<&'a Path>,
    /// `--endpoints` or `PGHA_DCS__ENDPOINTS` given: no file is needed.
    pub endpoints_given: bool,
}

/// The file to load, or None to run from flags and environment alone. `-c` and `$PGHA_CTL_CONFIG` are taken as
/// given (a missing file is then reported by the loader, naming it); the default places only when they exist.
pub fn resolve(lookup: &Lookup<'_>, exists: impl Fn(&Path) -> bool) -> Result<Option<PathBuf>, NotFound> {
    if let Some(flag) = lookup.flag {
        return Ok(Some(flag.to_path_buf()));
    }
    if let Some(env) = lookup.env.filter(|e| !e.trim().is_empty()) {
        return Ok(Some(PathBuf::from(env)));
    }
    let mut tried = vec!["-c".to_string(), format!("${ENV} (unset)")];
    let mut candidates = vec![PathBuf::from(SYSTEM)];
    match lookup.home {
        Some(home) => candidates.push(home.join(".config/pgha/ctl.toml")),
        None => tried.push("~/.config/pgha/ctl.toml ($HOME unset)".to_string()),
    }
    for path in candidates {
        if exists(&path) {
            return Ok(Some(path));
        }
        tried.push(path.display().to_string());
    }
    if lookup.endpoints_given {
        return Ok(None);
    }
    Err(NotFound { tried })
}

/// [`resolve`] with the process environment and file system.
pub fn from_process(flag: Option<&Path>, endpoints_flag: bool) -> Result<Option<PathBuf>, NotFound> {
    let env = std::env::var(ENV).ok();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let endpoints_env = std::env::var("PGHA_DCS__ENDPOINTS").is_ok_and(|e| !e.trim().is_empty());
    let lookup = Lookup {
        flag,
        env: env.as_deref(),
        home: home.as_deref(),
        endpoints_given: endpoints_flag || endpoints_env,
    };
    resolve(&lookup, Path::is_file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_order_table() {
        let home = Path::new("/home/op");
        const USER: &str = "/home/op/.config/pgha/ctl.toml";
        let user = USER;
        let flag = Path::new("/tmp/x.toml");
        // (flag, env, home, endpoints given, existing files, expected file or Err(what the error names))
        type Case<'a> = (
            Option<&'a Path>,
            Option<&'a str>,
            Option<&'a Path>,
            bool,
            &'a [&'a str],
            Result<Option<&'a str>, &'a str>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                Some(flag),
                Some("/env.toml"),
                Some(home),
                false,
                &[SYSTEM],
                Ok(Some("/tmp/x.toml")),
            ),
            (
                None,
                Some("/env.toml"),
                Some(home),
                false,
                &[SYSTEM, USER],
                Ok(Some("/env.toml")),
            ),
            (None, Some(""), Some(home), false, &[SYSTEM, USER], Ok(Some(SYSTEM))),
            (None, None, Some(home), false, &[SYSTEM, USER], Ok(Some(SYSTEM))),
            (None, None, Some(home), false, &[USER], Ok(Some(user))),
            (None, None, Some(home), true, &[USER], Ok(Some(user))),
            (None, None, Some(home), true, &[], Ok(None)),
            (None, None, Some(home), false, &[], Err(user)),
            (None, None, None, false, &[], Err("$HOME unset")),
            (None, None, Some(home), false, &[], Err(SYSTEM)),
        ];
        for (flag, env, home, endpoints_given, files, want) in cases {
            let lookup = Lookup {
                flag,
                env,
                home,
                endpoints_given,
            };
            let got = resolve(&lookup, |p| files.iter().any(|f| Path::new(f) == p));
            match want {
                Ok(path) => assert_eq!(got, Ok(path.map(PathBuf::from)), "{flag:?} {env:?} {files:?}"),
                Err(needle) => {
                    let err = got.expect_err("no file").to_string();
                    assert!(err.contains(needle) && err.contains(ENV), "{needle}: {err}");
                }
            }
        }
    }
}
