//! The VIP address on the interface, through rtnetlink. Every change is checked against the kernel's own address
//! list (not our bookkeeping), and "already there" / "already gone" count as success, so each call is idempotent.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use rtnetlink::Handle;

use super::VipError;

/// EEXIST: the address is already on the interface.
const EEXIST: i32 = libc::EEXIST;
/// EADDRNOTAVAIL: the address is not on the interface (someone removed it first).
const EADDRNOTAVAIL: i32 = libc::EADDRNOTAVAIL;

/// An rtnetlink handle bound to one interface and one address.
pub struct VipAddress {
    handle: Handle,
    index: u32,
    interface: String,
    address: Ipv4Addr,
    prefix_len: u8,
}

fn netlink_errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    }
}

impl VipAddress {
    /// Opens a netlink connection (its driver task runs on the current tokio runtime) and finds the interface.
    pub async fn open(interface: &str, address: Ipv4Addr, prefix_len: u8) -> Result<VipAddress, VipError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| VipError::Netlink {
            action: "opening a netlink socket",
            message: e.to_string(),
        })?;
        tokio::spawn(conn);
        let link = handle
            .link()
            .get()
            .match_name(interface.to_string())
            .execute()
            .try_next()
            .await;
        let index = match link {
            Ok(Some(l)) => l.header.index,
            Ok(None) => return Err(VipError::NoInterface(interface.to_string())),
            Err(e) if netlink_errno(&e) == Some(libc::ENODEV) => {
                return Err(VipError::NoInterface(interface.to_string()))
            }
            Err(e) => {
                return Err(VipError::Netlink {
                    action: "looking up the interface",
                    message: format!("{interface}: {e}"),
                })
            }
        };
        Ok(VipAddress {
            handle,
            index,
            interface: interface.to_string(),
            address,
            prefix_len,
        })
    }

    /// `address/prefix` for logs.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.address, self.prefix_len)
    }

    /// The interface name.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Whether the kernel lists the address on the interface (with any prefix length).
    pub async fn present(&self) -> Result<bool, VipError> {
        let mut found = self
            .handle
            .address()
            .get()
            .set_link_index_filter(self.index)
            .set_address_filter(IpAddr::V4(self.address))
            .execute();
        match found.try_next().await {
            Ok(m) => Ok(m.is_some()),
            Err(e) => Err(VipError::Netlink {
                action: "listing addresses",
                message: format!("{}: {e}", self.interface),
            }),
        }
    }

    /// Adds the address (replace: idempotent).
    pub async fn add(&self) -> Result<(), VipError> {
        let res = self
            .handle
            .address()
            .add(self.index, IpAddr::V4(self.address), self.prefix_len)
            .replace()
            .execute()
            .await;
        match res {
            Ok(()) => Ok(()),
            Err(e) if netlink_errno(&e) == Some(EEXIST) => Ok(()),
            Err(e) => Err(VipError::Netlink {
                action: "adding the VIP",
                message: format!("{} on {}: {e}", self.cidr(), self.interface),
            }),
        }
    }

    /// Removes the address wherever the kernel lists it on the interface (every prefix length).
    pub async fn remove(&self) -> Result<(), VipError> {
        let listed: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(self.index)
            .set_address_filter(IpAddr::V4(self.address))
            .execute()
            .try_collect()
            .await
            .map_err(|e| VipError::Netlink {
                action: "listing addresses",
                message: format!("{}: {e}", self.interface),
            })?;
        for msg in listed {
            match self.handle.address().del(msg).execute().await {
                Ok(()) => {}
                Err(e) if netlink_errno(&e) == Some(EADDRNOTAVAIL) => {}
                Err(e) => {
                    return Err(VipError::Netlink {
                        action: "removing the VIP",
                        message: format!("{} on {}: {e}", self.cidr(), self.interface),
                    })
                }
            }
        }
        Ok(())
    }

    /// Makes the kernel's list agree with `wanted`; returns true when something had to change.
    pub async fn reconcile(&self, wanted: bool) -> Result<bool, VipError> {
        let present = self.present().await?;
        match (wanted, present) {
            (true, false) => self.add().await.map(|()| true),
            (false, true) => self.remove().await.map(|()| true),
            _ => Ok(false),
        }
    }
}
