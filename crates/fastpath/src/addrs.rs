//! What the fast path learns from the interface it serves: its MAC and IPv4 addresses (the
//! kernel keeps owning them; smoltcp answers on them only for the steered port).

use std::{io::Read, net::Ipv4Addr};

use crate::FastPathError;

/// An interface's MAC and its IPv4 addresses with their prefix lengths.
pub(crate) type Addresses = ([u8; 6], Vec<(Ipv4Addr, u8)>);

/// The [`Addresses`] of `iface` in the calling thread's namespace.
pub(crate) fn of(iface: &str) -> Result<Addresses, FastPathError> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills head with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(FastPathError::Config(format!(
            "listing interface addresses: {}",
            std::io::Error::last_os_error()
        )));
    }
    let mut mac = None;
    let mut v4 = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: cur is an element of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        // SAFETY: ifa_name is a NUL-terminated string.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if name.to_bytes() != iface.as_bytes() || ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points at a sockaddr whose family says its type.
        match i32::from(unsafe { (*ifa.ifa_addr).sa_family }) {
            libc::AF_PACKET => {
                // SAFETY: AF_PACKET entries are sockaddr_ll.
                let ll = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_ll) };
                if ll.sll_halen == 6 {
                    let mut m = [0u8; 6];
                    m.copy_from_slice(&ll.sll_addr[..6]);
                    mac = Some(m);
                }
            }
            libc::AF_INET => {
                // SAFETY: AF_INET entries are sockaddr_in, and so is their netmask.
                let a = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                let prefix = if ifa.ifa_netmask.is_null() {
                    32
                } else {
                    // SAFETY: as above.
                    let m = unsafe { &*(ifa.ifa_netmask as *const libc::sockaddr_in) };
                    u32::from_be(m.sin_addr.s_addr).count_ones() as u8
                };
                v4.push((Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)), prefix));
            }
            _ => {}
        }
    }
    // SAFETY: head came from getifaddrs.
    unsafe { libc::freeifaddrs(head) };
    let mac = mac.ok_or_else(|| {
        FastPathError::Accel(disgrafs_accel::AccelError::InterfaceNotFound {
            iface: iface.to_string(),
            netns: None,
        })
    })?;
    Ok((mac, v4))
}

/// A seed for smoltcp's initial sequence numbers, from the kernel's generator.
pub(crate) fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if read.is_err() {
        // No urandom: the clock still differs from one start to the next.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return t.as_nanos() as u64 ^ u64::from(std::process::id());
    }
    u64::from_ne_bytes(b)
}
