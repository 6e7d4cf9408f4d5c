//! Gratuitous ARP: the frame (pure), its schedule (pure) and the sending (a blocking packet socket, opened per burst).
//!
//! Neighbours update an existing ARP entry for the VIP from a gratuitous request, so clients and routers switch to
//! the new holder's MAC without waiting for their entry to go stale. A burst on acquiring, a repeat ~2 s later
//! (in case the first burst met a switch still learning), then a refresh every 10 s while holding.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use pnet_datalink::{Channel, Config, NetworkInterface};

use super::VipError;

/// Frames per burst.
pub const BURST: usize = 3;
/// Pause between the frames of one burst.
pub const BURST_GAP: Duration = Duration::from_millis(20);
/// The repeat after the first burst.
pub const REPEAT_AFTER: Duration = Duration::from_secs(2);
/// The periodic refresh while holding.
pub const REFRESH: Duration = Duration::from_secs(10);

/// A gratuitous ARP request announcing that `ip` is at `mac`: Ethernet broadcast, ARP request (opcode 1) whose
/// sender and target protocol addresses are both `ip`, target hardware address zero.
pub fn frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]); // destination: broadcast
    f[6..12].copy_from_slice(&mac); // source
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes()); // EtherType ARP
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // hardware type Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol IPv4
    f[18] = 6; // hardware address length
    f[19] = 4; // protocol address length
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    f[22..28].copy_from_slice(&mac); // sender hardware address
    f[28..32].copy_from_slice(&ip.octets()); // sender protocol address
                                             // 32..38: target hardware address stays zero
    f[38..42].copy_from_slice(&ip.octets()); // target protocol address
    f
}

/// When the next announcement is due, given when the VIP was acquired and how many bursts went out (pure).
pub fn next_due(acquired: Instant, bursts_sent: u32) -> Instant {
    match bursts_sent {
        0 => acquired,
        1 => acquired + REPEAT_AFTER,
        n => acquired + REPEAT_AFTER + REFRESH * (n - 1),
    }
}

/// The interface by name, with a clear error when it does not exist or has no MAC address.
pub fn interface(name: &str) -> Result<NetworkInterface, VipError> {
    let found = pnet_datalink::interfaces().into_iter().find(|i| i.name == name);
    let iface = found.ok_or_else(|| VipError::NoInterface(name.to_string()))?;
    if iface.mac.is_none_or(|m| m.octets() == [0; 6]) {
        return Err(VipError::Interface {
            interface: name.to_string(),
            message: "it has no MAC address (gratuitous ARP needs an Ethernet interface)".into(),
        });
    }
    Ok(iface)
}

/// The interface's MAC address.
pub fn mac_of(name: &str) -> Result<[u8; 6], VipError> {
    let iface = interface(name)?;
    let m = iface.mac.unwrap_or_default();
    Ok([m.0, m.1, m.2, m.3, m.4, m.5])
}

/// Sends one burst on `interface` (blocking: call it from `spawn_blocking`). The channel is opened for the burst
/// and dropped after it, so no packet socket lingers between announcements.
pub fn send_burst(interface_name: &str, ip: Ipv4Addr) -> Result<(), VipError> {
    let iface = interface(interface_name)?;
    let m = iface.mac.unwrap_or_default();
    let bytes = frame([m.0, m.1, m.2, m.3, m.4, m.5], ip);
    let err = |message: String| VipError::Interface {
        interface: interface_name.to_string(),
        message,
    };
    let config = Config {
        promiscuous: false, // the default is promiscuous: we only send
        ..Default::default()
    };
    let mut tx = match pnet_datalink::channel(&iface, config) {
        Ok(Channel::Ethernet(tx, _rx)) => tx,
        Ok(_) => return Err(err("not an Ethernet channel".into())),
        Err(e) => {
            return Err(err(format!(
                "opening a packet socket for gratuitous ARP (needs CAP_NET_RAW): {e}"
            )))
        }
    };
    for i in 0..BURST {
        if i > 0 {
            std::thread::sleep(BURST_GAP);
        }
        match tx.send_to(&bytes, None) {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(err(format!("sending gratuitous ARP: {e}"))),
            None => return Err(err("sending gratuitous ARP: no send buffer".into())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_bytes() {
        let mac = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];
        let want: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
            0x02, 0x42, 0xac, 0x11, 0x00, 0x02, // src
            0x08, 0x06, // ARP
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, // Ethernet, IPv4, 6, 4
            0x00, 0x01, // request
            0x02, 0x42, 0xac, 0x11, 0x00, 0x02, // sender MAC
            10, 0, 0, 10, // sender IP
            0, 0, 0, 0, 0, 0, // target MAC
            10, 0, 0, 10, // target IP
        ];
        assert_eq!(frame(mac, Ipv4Addr::new(10, 0, 0, 10)), want);
    }

    #[test]
    fn schedule() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let cases = [(0, t0), (1, t0 + s(2)), (2, t0 + s(12)), (3, t0 + s(22))];
        for (sent, due) in cases {
            assert_eq!(next_due(t0, sent), due, "after {sent} bursts");
        }
    }

    #[test]
    fn missing_interface_is_named() {
        let e = interface("pgha-no-such-if").expect_err("no such interface");
        assert!(e.to_string().contains("pgha-no-such-if"), "{e}");
    }
}
