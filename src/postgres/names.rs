//! Pure naming helpers: replication slot names, LSN formatting/parsing and role-name validation.

/// Longest identifier PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_NAME: usize = 63;

/// The physical replication slot of a member: lowercase, every character outside `[a-z0-9_]` replaced by `_`,
/// at most 63 bytes, no prefix (`"db-1.east"` -> `"db_1_east"`). An empty name gives `"_"`.
pub fn slot_name(member: &str) -> String {
    let mut out: String = member
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME)
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// Whether `name` is acceptable to PostgreSQL as a replication slot name (`[a-z0-9_]{1,63}`).
pub fn is_valid_slot_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// PostgreSQL's text form of an LSN: `0x3000060` -> `"0/3000060"`.
pub fn lsn_to_string(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Parses PostgreSQL's text form of an LSN (`"16/B374D848"`); None when malformed.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    if hi.is_empty() || lo.is_empty() || hi.len() > 8 || lo.len() > 8 {
        return None;
    }
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    Some((hi << 32) | lo)
}

/// Whether a role or OS user name is safe to write into `pg_hba.conf`/`pg_ident.conf` (quoted) and SQL
/// (`%I`): 1 to 63 characters from `[A-Za-z0-9_.-]`, not starting with `-`.
pub fn is_valid_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names() {
        for (member, slot) in [
            ("db1", "db1"),
            ("DB-1.east", "db_1_east"),
            ("node_2", "node_2"),
            ("é", "_"),
            ("", "_"),
            ("a b", "a_b"),
        ] {
            assert_eq!(slot_name(member), slot, "{member:?}");
            assert!(is_valid_slot_name(&slot_name(member)));
        }
        assert_eq!(slot_name(&"x".repeat(100)).len(), 63);
    }

    #[test]
    fn slot_name_validity() {
        for (name, ok) in [
            ("db1", true),
            ("Db1", false),
            ("", false),
            ("a-b", false),
            ("a_b_9", true),
        ] {
            assert_eq!(is_valid_slot_name(name), ok, "{name:?}");
        }
        assert!(!is_valid_slot_name(&"a".repeat(64)));
    }

    #[test]
    fn lsns() {
        for (lsn, text) in [
            (0x3000060u64, "0/3000060"),
            (0, "0/0"),
            (0x16_B374_D848, "16/B374D848"),
            (u64::MAX, "FFFFFFFF/FFFFFFFF"),
        ] {
            assert_eq!(lsn_to_string(lsn), text);
            assert_eq!(parse_lsn(text), Some(lsn));
        }
        assert_eq!(parse_lsn("0/3000060\n"), Some(0x3000060));
        for bad in ["", "0", "/1", "1/", "x/1", "1/2/3", "123456789/0"] {
            assert_eq!(parse_lsn(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn role_names() {
        for (name, ok) in [
            ("postgres", true),
            ("Replicator_1", true),
            ("app.user-2", true),
            ("", false),
            ("-x", false),
            ("a b", false),
            ("a\"b", false),
            ("a\nb", false),
        ] {
            assert_eq!(is_valid_role_name(name), ok, "{name:?}");
        }
    }
}
