//! Pure parsing of `pg_controldata` output (run with LC_ALL=C).

use super::names::parse_lsn;
use super::PgError;

/// The fields of `pg_controldata` pgha uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlData {
    /// `Database system identifier`.
    pub system_identifier: u64,
    /// `Database cluster state`, e.g. "in production", "shut down", "shut down in recovery".
    pub cluster_state: String,
    /// `Latest checkpoint's TimeLineID`.
    pub timeline: u32,
    /// `Latest checkpoint location`.
    pub checkpoint_lsn: u64,
}

impl ControlData {
    /// Whether the cluster was shut down cleanly (as primary or as standby), as `pg_rewind` requires.
    pub fn is_clean_shutdown(&self) -> bool {
        matches!(self.cluster_state.as_str(), "shut down" | "shut down in recovery")
    }
}

const STEP: &str = "reading pg_controldata";

fn field<'a>(text: &'a str, key: &str) -> Result<&'a str, PgError> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .ok_or_else(|| PgError::Parse {
            step: STEP,
            what: format!("{key:?}"),
            detail: "field missing".into(),
        })
}

fn bad(key: &str, value: &str) -> PgError {
    PgError::Parse {
        step: STEP,
        what: format!("{key:?}"),
        detail: format!("unexpected value {value:?}"),
    }
}

/// Parses the output of `pg_controldata -D <dir>`.
pub fn parse_controldata(text: &str) -> Result<ControlData, PgError> {
    let get = |key: &str| field(text, key);
    let sysid = get("Database system identifier")?;
    let system_identifier = sysid
        .parse::<u64>()
        .map_err(|_| bad("Database system identifier", sysid))?;
    let cluster_state = get("Database cluster state")?.to_string();
    let tli = get("Latest checkpoint's TimeLineID")?;
    let timeline = tli
        .parse::<u32>()
        .map_err(|_| bad("Latest checkpoint's TimeLineID", tli))?;
    let loc = get("Latest checkpoint location")?;
    let checkpoint_lsn = parse_lsn(loc).ok_or_else(|| bad("Latest checkpoint location", loc))?;
    Ok(ControlData {
        system_identifier,
        cluster_state,
        timeline,
        checkpoint_lsn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7312345678901234567
Database cluster state:               shut down in recovery
pg_control last modified:             Mon 01 Jan 2024 00:00:00 UTC
Latest checkpoint location:           0/3000060
Latest checkpoint's REDO location:    0/3000028
Latest checkpoint's REDO WAL file:    000000020000000000000003
Latest checkpoint's TimeLineID:       2
Latest checkpoint's PrevTimeLineID:   1
";

    #[test]
    fn parses_sample() {
        let cd = parse_controldata(SAMPLE).expect("sample parses");
        assert_eq!(
            cd,
            ControlData {
                system_identifier: 7312345678901234567,
                cluster_state: "shut down in recovery".into(),
                timeline: 2,
                checkpoint_lsn: 0x3000060,
            }
        );
        assert!(cd.is_clean_shutdown());
    }

    #[test]
    fn states_and_errors() {
        for (state, clean) in [
            ("in production", false),
            ("shut down", true),
            ("in archive recovery", false),
            ("in crash recovery", false),
        ] {
            let text = SAMPLE.replace("shut down in recovery", state);
            let cd = parse_controldata(&text).expect("parses");
            assert_eq!((cd.cluster_state.as_str(), cd.is_clean_shutdown()), (state, clean));
        }
        for (from, to) in [
            ("7312345678901234567", "x"),
            (
                "Latest checkpoint's TimeLineID:       2",
                "Latest checkpoint's TimeLineID:  -1",
            ),
            ("0/3000060", "nope"),
            ("Database cluster state", "Cluster state"),
        ] {
            let err = parse_controldata(&SAMPLE.replace(from, to)).expect_err("must fail");
            assert!(matches!(err, PgError::Parse { .. }), "{err}");
        }
        assert!(parse_controldata("").is_err());
    }
}
