//! Choosing the PostgreSQL bin directory (pure): version strings parsed, one candidate picked for what is needed.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// Major versions pgha runs (what `pgha.conf` and the SQL it sends are valid for).
pub const SUPPORTED: RangeInclusive<u32> = 13..=18;

/// A complete bin directory and the major version its `postgres --version` reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The directory holding initdb, pg_ctl, postgres, ...
    pub dir: PathBuf,
    /// Its major version.
    pub major: u32,
}

/// Which version the binaries must be, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The data directory's `PG_VERSION`: other binaries cannot run it.
    DataDir(u32),
    /// No data yet (a new member, or before a clone): the version the cluster runs.
    Cluster(u32),
    /// No data and no known cluster version: the newest supported version installed.
    Newest,
}

impl Need {
    /// The data directory's version wins over the cluster's; neither known means the newest.
    pub fn from_versions(data_dir: Option<u32>, cluster: Option<u32>) -> Need {
        match (data_dir, cluster) {
            (Some(v), _) => Need::DataDir(v),
            (None, Some(v)) => Need::Cluster(v),
            (None, None) => Need::Newest,
        }
    }
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Need::DataDir(v) => write!(f, "PostgreSQL {v}, the data directory's PG_VERSION"),
            Need::Cluster(v) => write!(f, "PostgreSQL {v}, the cluster's version (no data directory yet)"),
            Need::Newest => write!(f, "the newest PostgreSQL installed (no data directory yet)"),
        }
    }
}

/// Why no bin directory can be used. Every variant names the directories involved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BinDirError {
    /// `postgresql.bin_dir` lacks a required program.
    #[error("configured postgresql.bin_dir {} lacks {missing}", dir.display())]
    ConfiguredIncomplete {
        /// The configured directory.
        dir: PathBuf,
        /// The missing programs, comma-separated.
        missing: String,
    },
    /// `postgresql.bin_dir` is another major version than the data directory.
    #[error(
        "configured postgresql.bin_dir {} is PostgreSQL {found}, but the data directory {} is PostgreSQL {needed}",
        dir.display(), data_dir.display()
    )]
    ConfiguredMismatch {
        /// The configured directory.
        dir: PathBuf,
        /// Its `postgres --version`.
        found: u32,
        /// The data directory.
        data_dir: PathBuf,
        /// Its `PG_VERSION`.
        needed: u32,
    },
    /// `PG_VERSION` cannot be read or is not a version.
    #[error("{}: {reason}", path.display())]
    PgVersionFile {
        /// The `PG_VERSION` file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The data directory is a version pgha does not run.
    #[error(
        "the data directory {} is PostgreSQL {version}; pgha runs PostgreSQL {} to {}",
        data_dir.display(), SUPPORTED.start(), SUPPORTED.end()
    )]
    UnsupportedData {
        /// The data directory.
        data_dir: PathBuf,
        /// Its `PG_VERSION` (major).
        version: u32,
    },
    /// Nothing installed fits.
    #[error(
        "no binaries for {need}: searched {} (found: {}); install them, add their directory to PGHA_PG_SEARCH \
         or set postgresql.bin_dir",
        list(searched),
        found_list(found)
    )]
    NotFound {
        /// What was needed.
        need: Need,
        /// Every directory looked at, in order.
        searched: Vec<PathBuf>,
        /// The complete directories found, with their versions.
        found: Vec<Candidate>,
    },
}

fn list(dirs: &[PathBuf]) -> String {
    let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    if shown.is_empty() {
        "nothing".into()
    } else {
        shown.join(", ")
    }
}

fn found_list(found: &[Candidate]) -> String {
    let shown: Vec<String> = found
        .iter()
        .map(|c| format!("{} = {}", c.dir.display(), c.major))
        .collect();
    if shown.is_empty() {
        "none".into()
    } else {
        shown.join(", ")
    }
}

/// The candidate for `need`: the first (in search order) of the needed version, or for [`Need::Newest`] the first
/// of the highest supported version. Versions outside [`SUPPORTED`] are never chosen.
pub fn choose(need: Need, candidates: &[Candidate], searched: &[PathBuf]) -> Result<Candidate, BinDirError> {
    let supported = candidates.iter().filter(|c| SUPPORTED.contains(&c.major));
    let chosen = match need {
        Need::DataDir(v) | Need::Cluster(v) => supported.into_iter().find(|c| c.major == v),
        // `max_by_key` keeps the last of equals; the first in search order must win (the operator's roots first).
        Need::Newest => supported.fold(None, |best: Option<&Candidate>, c| match best {
            Some(b) if b.major >= c.major => Some(b),
            _ => Some(c),
        }),
    };
    chosen.cloned().ok_or_else(|| BinDirError::NotFound {
        need,
        searched: searched.to_vec(),
        found: candidates.to_vec(),
    })
}

/// The major version in `postgres --version` output: `postgres (PostgreSQL) 18.6`, `... 15.14 (Debian ...)`,
/// `... 17beta1`, `... 9.6.24` (major 9).
pub fn parse_version_output(text: &str) -> Option<u32> {
    let rest = text.trim().strip_prefix("postgres (PostgreSQL) ")?;
    leading_number(rest)
}

/// The major version in a `PG_VERSION` file (`18`, or `9.6` before PostgreSQL 10: major 9).
pub fn parse_pg_version_file(text: &str) -> Option<u32> {
    let t = text.trim();
    let major = leading_number(t)?;
    // Nothing but digits and at most one dot: anything else is not a file PostgreSQL wrote.
    let shape_ok = t.chars().all(|c| c.is_ascii_digit() || c == '.') && t.matches('.').count() <= 1;
    shape_ok.then_some(major)
}

fn leading_number(text: &str) -> Option<u32> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Checks a data directory's version is one pgha runs.
pub fn check_supported(data_dir: &Path, major: u32) -> Result<u32, BinDirError> {
    match SUPPORTED.contains(&major) {
        true => Ok(major),
        false => Err(BinDirError::UnsupportedData {
            data_dir: data_dir.to_path_buf(),
            version: major,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(dir: &str, major: u32) -> Candidate {
        Candidate { dir: dir.into(), major }
    }

    /// (case, data dir version, cluster version, candidates in search order, Ok(dir) or Err(needed)).
    type Row<'a> = (
        &'a str,
        Option<u32>,
        Option<u32>,
        Vec<Candidate>,
        Result<&'a Candidate, Need>,
    );

    #[test]
    fn choice_table() {
        let deb15 = cand("/usr/lib/postgresql/15/bin", 15);
        let deb18 = cand("/usr/lib/postgresql/18/bin", 18);
        let rhel18 = cand("/usr/pgsql-18/bin", 18);
        let wheel18 = cand("/opt/pg18/bin", 18);
        let v12 = cand("/usr/lib/postgresql/12/bin", 12);
        let v19 = cand("/usr/lib/postgresql/19/bin", 19);
        let table: Vec<Row> = vec![
            (
                "18 data, 15 and 18 installed",
                Some(18),
                None,
                vec![deb15.clone(), deb18.clone()],
                Ok(&deb18),
            ),
            (
                "15 data, 15 and 18 installed",
                Some(15),
                None,
                vec![deb18.clone(), deb15.clone()],
                Ok(&deb15),
            ),
            (
                "the data directory beats the cluster",
                Some(15),
                Some(18),
                vec![deb15.clone(), deb18.clone()],
                Ok(&deb15),
            ),
            (
                "18 data, only 15",
                Some(18),
                None,
                vec![deb15.clone()],
                Err(Need::DataDir(18)),
            ),
            ("nothing installed", Some(15), None, vec![], Err(Need::DataDir(15))),
            (
                "empty dir: the cluster's version",
                None,
                Some(15),
                vec![deb18.clone(), deb15.clone()],
                Ok(&deb15),
            ),
            (
                "empty dir: the cluster's version missing",
                None,
                Some(16),
                vec![deb18.clone(), deb15.clone()],
                Err(Need::Cluster(16)),
            ),
            (
                "empty dir, unknown cluster: newest",
                None,
                None,
                vec![deb15.clone(), deb18.clone()],
                Ok(&deb18),
            ),
            (
                "newest: the first of equals in search order",
                None,
                None,
                vec![wheel18.clone(), deb15.clone(), deb18.clone(), rhel18.clone()],
                Ok(&wheel18),
            ),
            (
                "same version twice: the first in search order",
                Some(18),
                None,
                vec![rhel18.clone(), deb18.clone()],
                Ok(&rhel18),
            ),
            (
                "newest ignores unsupported versions",
                None,
                None,
                vec![v19.clone(), deb15.clone(), v12.clone()],
                Ok(&deb15),
            ),
            (
                "only unsupported versions",
                None,
                None,
                vec![v19.clone(), v12.clone()],
                Err(Need::Newest),
            ),
            (
                "never an unsupported version, even when asked",
                None,
                Some(19),
                vec![v19.clone()],
                Err(Need::Cluster(19)),
            ),
        ];
        for (case, data, cluster, candidates, want) in table {
            let searched = vec![PathBuf::from("/searched/a"), PathBuf::from("/searched/b")];
            let got = choose(Need::from_versions(data, cluster), &candidates, &searched);
            match want {
                Ok(dir) => assert_eq!(got.as_ref(), Ok(dir), "{case}"),
                Err(need) => assert_eq!(
                    got,
                    Err(BinDirError::NotFound {
                        need,
                        searched: searched.clone(),
                        found: candidates.clone(),
                    }),
                    "{case}"
                ),
            }
        }
    }

    #[test]
    fn not_found_names_the_version_and_the_directories() {
        let searched = vec![
            PathBuf::from("/usr/lib/postgresql/18/bin"),
            PathBuf::from("/usr/pgsql-18/bin"),
        ];
        let err = choose(Need::DataDir(18), &[cand("/usr/lib/postgresql/15/bin", 15)], &searched).expect_err("no 18");
        let text = err.to_string();
        for part in [
            "PostgreSQL 18, the data directory's PG_VERSION",
            "/usr/lib/postgresql/18/bin, /usr/pgsql-18/bin",
            "/usr/lib/postgresql/15/bin = 15",
            "PGHA_PG_SEARCH",
        ] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
    }

    #[test]
    fn version_outputs() {
        for (text, want) in [
            ("postgres (PostgreSQL) 18.6\n", Some(18)),
            ("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n", Some(15)),
            ("postgres (PostgreSQL) 17beta1", Some(17)),
            ("postgres (PostgreSQL) 9.6.24", Some(9)),
            ("postgres (Greenplum) 7.0", None),
            ("", None),
            ("postgres (PostgreSQL) ", None),
        ] {
            assert_eq!(parse_version_output(text), want, "{text:?}");
        }
    }

    #[test]
    fn pg_version_files() {
        for (text, want) in [
            ("18\n", Some(18)),
            ("13", Some(13)),
            ("9.6\n", Some(9)),
            ("", None),
            ("abc", None),
            ("18 garbage", None),
            ("1.2.3", None),
        ] {
            assert_eq!(parse_pg_version_file(text), want, "{text:?}");
        }
    }

    #[test]
    fn supported_range() {
        let dir = Path::new("/d");
        assert_eq!(check_supported(dir, 13), Ok(13));
        assert_eq!(check_supported(dir, 18), Ok(18));
        let err = check_supported(dir, 12).expect_err("12");
        assert_eq!(
            err.to_string(),
            "the data directory /d is PostgreSQL 12; pgha runs PostgreSQL 13 to 18"
        );
        assert!(check_supported(dir, 19).is_err());
    }
}
