//! Hand-made Ethernet frames for tests and load generators: the shapes real stacks rarely send
//! (VLAN tags, IP and TCP options, IPv6 extension headers, truncation) on demand, and a raw
//! sender that puts them on a veth inside a test namespace.

use std::{
    io,
    mem::size_of,
    net::Ipv4Addr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use crate::AccelError;

/// What [`frame`] builds.
#[derive(Debug, Clone)]
pub struct FrameSpec<'a> {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// In-band 802.1Q tags before the IP header.
    pub vlans: usize,
    pub v6: bool,
    /// One hop-by-hop options header before the transport header (IPv6).
    pub v6_ext: bool,
    /// Bytes of IPv4 options (a multiple of 4).
    pub ip_opts: usize,
    /// Bytes of TCP options (a multiple of 4).
    pub tcp_opts: usize,
    /// 6 (TCP) or 17 (UDP).
    pub proto: u8,
    pub src_v4: Ipv4Addr,
    pub dst_v4: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub payload: &'a [u8],
}

impl Default for FrameSpec<'_> {
    fn default() -> Self {
        FrameSpec {
            src_mac: [0x02, 0, 0, 0, 0, 1],
            dst_mac: [0x02, 0, 0, 0, 0, 2],
            vlans: 0,
            v6: false,
            v6_ext: false,
            ip_opts: 0,
            tcp_opts: 0,
            proto: 6,
            src_v4: Ipv4Addr::new(198, 18, 0, 1),
            dst_v4: Ipv4Addr::new(198, 18, 0, 2),
            sport: 40000,
            dport: 8080,
            payload: b"",
        }
    }
}

/// The internet checksum of an IPv4 header.
fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Builds the frame described by `s`. IPv4 header checksums are valid (the stack drops frames
/// without); TCP checksums are not computed (these frames feed filters, not sockets), UDP's is 0
/// ("none", valid over IPv4).
pub fn frame(s: &FrameSpec) -> Vec<u8> {
    let mut f = Vec::with_capacity(64 + s.payload.len());
    f.extend_from_slice(&s.dst_mac);
    f.extend_from_slice(&s.src_mac);
    for _ in 0..s.vlans {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
    }
    let mut l4 = Vec::with_capacity(40 + s.payload.len());
    l4.extend_from_slice(&s.sport.to_be_bytes());
    l4.extend_from_slice(&s.dport.to_be_bytes());
    if s.proto == 6 {
        let doff = ((20 + s.tcp_opts) / 4) as u8;
        l4.extend_from_slice(&[
            0,
            0,
            0,
            1,
            0,
            0,
            0,
            0,
            doff << 4,
            0x18,
            0xff,
            0xff,
            0,
            0,
            0,
            0,
        ]);
        l4.extend(std::iter::repeat_n(1u8, s.tcp_opts)); // NOPs
    } else {
        l4.extend_from_slice(&((8 + s.payload.len()) as u16).to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
    }
    l4.extend_from_slice(s.payload);
    if s.v6 {
        f.extend_from_slice(&[0x86, 0xDD]);
        let ext = if s.v6_ext { 8 } else { 0 };
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&((l4.len() + ext) as u16).to_be_bytes());
        f.push(if s.v6_ext { 0 } else { s.proto });
        f.push(64);
        f.extend_from_slice(&[0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        if s.v6_ext {
            f.extend_from_slice(&[s.proto, 0, 1, 4, 0, 0, 0, 0]); // hop-by-hop with PadN
        }
    } else {
        f.extend_from_slice(&[0x08, 0x00]);
        let ihl = (20 + s.ip_opts) / 4;
        let tot = (ihl * 4 + l4.len()) as u16;
        let mut ip = vec![0x40 | ihl as u8, 0];
        ip.extend_from_slice(&tot.to_be_bytes());
        ip.extend_from_slice(&[0, 1, 0x40, 0, 64, s.proto, 0, 0]);
        ip.extend_from_slice(&s.src_v4.octets());
        ip.extend_from_slice(&s.dst_v4.octets());
        ip.extend(std::iter::repeat_n(1u8, s.ip_opts)); // NOPs
        let c = ip_checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend(ip);
    }
    f.extend(l4);
    f
}

/// A raw AF_PACKET socket that sends frames out of one interface of the calling thread's
/// namespace (create it inside [`super::NetNsGuard::run`]).
#[derive(Debug)]
pub struct RawSender {
    fd: OwnedFd,
    ifindex: u32,
}

impl RawSender {
    pub fn new(ifname: &str) -> Result<Self, AccelError> {
        let ifindex = crate::sys::if_index(ifname, None)?;
        // Protocol 0: a send-only socket, it receives nothing.
        // SAFETY: plain socket(2); ownership taken below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(AccelError::io(
                "opening a raw sender",
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: fresh descriptor owned by nobody else.
        Ok(RawSender {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            ifindex,
        })
    }

    /// Sends one frame; blocks while the device queue is full.
    pub fn send(&self, frame: &[u8]) -> Result<(), AccelError> {
        // SAFETY: zeroed sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: frame and sll are live for the call, lengths match.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            return Err(AccelError::io(
                "sending a raw frame",
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_checksum_is_valid() {
        let f = frame(&FrameSpec {
            ip_opts: 4,
            payload: b"x",
            ..Default::default()
        });
        let ip = &f[14..14 + 24];
        assert_eq!(
            ip_checksum(ip),
            0,
            "a header with its checksum sums to 0xffff"
        );
    }
}
