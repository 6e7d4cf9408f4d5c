//! Start-up checks of the VIP keeper: the capabilities it needs (CAP_NET_ADMIN for the address, CAP_NET_RAW for
//! gratuitous ARP) and the interface. Failing here gives a clear error instead of a VIP that silently never moves.

use super::{VipError, VipSettings};

/// CAP_NET_ADMIN: add and remove addresses through netlink.
pub const CAP_NET_ADMIN: u32 = 12;
/// CAP_NET_RAW: open a packet socket for gratuitous ARP.
pub const CAP_NET_RAW: u32 = 13;

/// The effective capability mask from the text of `/proc/<pid>/status` (the `CapEff:` line, hexadecimal).
pub fn parse_cap_eff(status: &str) -> Result<u64, VipError> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .ok_or_else(|| VipError::Capabilities("no CapEff line in /proc/self/status".into()))?;
    u64::from_str_radix(line.trim(), 16)
        .map_err(|e| VipError::Capabilities(format!("CapEff {:?} in /proc/self/status: {e}", line.trim())))
}

/// The names of the required capabilities missing from `cap_eff`.
pub fn missing(cap_eff: u64) -> Vec<&'static str> {
    [(CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_NET_RAW, "CAP_NET_RAW")]
        .into_iter()
        .filter(|(bit, _)| cap_eff & (1u64 << bit) == 0)
        .map(|(_, name)| name)
        .collect()
}

/// Checks that this process may manage the VIP on the configured interface.
pub fn check_capabilities(s: &VipSettings) -> Result<(), VipError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| VipError::Capabilities(format!("reading /proc/self/status: {e}")))?;
    let lacking = missing(parse_cap_eff(&status)?);
    if !lacking.is_empty() {
        return Err(VipError::Capabilities(format!(
            "the VIP needs {} (run as root, or grant them, e.g. AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW in \
             the systemd unit)",
            lacking.join(" and ")
        )));
    }
    super::garp::interface(&s.interface)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_eff_table() {
        let status = |eff: &str| format!("Name:\tpgha\nCapInh:\t0000000000000000\nCapEff:\t{eff}\nCapBnd:\t0\n");
        let cases: [(&str, Vec<&str>); 4] = [
            ("000001ffffffffff", vec![]),
            ("0000000000000000", vec!["CAP_NET_ADMIN", "CAP_NET_RAW"]),
            ("0000000000001000", vec!["CAP_NET_RAW"]),
            ("0000000000002000", vec!["CAP_NET_ADMIN"]),
        ];
        for (eff, want) in cases {
            let mask = parse_cap_eff(&status(eff)).expect("parses");
            assert_eq!(missing(mask), want, "CapEff {eff}");
        }
        assert!(parse_cap_eff("Name: x\n").is_err(), "no CapEff line");
        assert!(parse_cap_eff("CapEff:\tzz\n").is_err(), "not hexadecimal");
    }
}
