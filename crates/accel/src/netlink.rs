//! The one rtnetlink question the accelerators ask: which XDP program, if any, an interface runs
//! (and in which mode), and whether it is a veth. Asked before attaching, so a program someone
//! else attached is never replaced (and the balancer picks a mode that keeps TCP working on
//! veth), and by `status`, so it can say what it sees.

use std::{io, mem::size_of};

use crate::AccelError;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// How an XDP program is attached (IFLA_XDP_ATTACHED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpAttached {
    None,
    Driver,
    Generic,
    Offload,
    Multi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XdpState {
    pub attached: XdpAttached,
    /// Id of the attached program (0 when none).
    pub prog_id: u32,
    /// The interface is one end of a veth pair (IFLA_INFO_KIND "veth").
    pub veth: bool,
}

#[repr(C)]
struct Request {
    len: u32,
    kind: u16,
    flags: u16,
    seq: u32,
    pid: u32,
    family: u8,
    pad: u8,
    if_type: u16,
    index: i32,
    if_flags: u32,
    change: u32,
}

/// Asks the kernel about the XDP state of interface `ifindex` in the calling thread's namespace.
pub fn xdp_state(ifindex: u32) -> Result<XdpState, AccelError> {
    let err = |e: io::Error| AccelError::io("querying the interface's XDP state (rtnetlink)", e);
    // SAFETY: plain socket(2); the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(err(io::Error::last_os_error()));
    }
    // SAFETY: fd was just returned by socket(2) and is not owned elsewhere.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    let req = Request {
        len: size_of::<Request>() as u32,
        kind: RTM_GETLINK,
        flags: NLM_F_REQUEST,
        seq: 1,
        pid: 0,
        family: libc::AF_UNSPEC as u8,
        pad: 0,
        if_type: 0,
        index: ifindex as i32,
        if_flags: 0,
        change: 0,
    };
    // SAFETY: req is a live, fully initialised repr(C) value of the given size.
    let sent = unsafe {
        libc::send(
            raw,
            (&req as *const Request).cast(),
            size_of::<Request>(),
            0,
        )
    };
    if sent < 0 {
        return Err(err(io::Error::last_os_error()));
    }
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: buf is writable for its whole length.
    let n = unsafe { libc::recv(raw, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(err(io::Error::last_os_error()));
    }
    parse_reply(&buf[..n as usize]).map_err(err)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_ne_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

/// Walks netlink attributes in `b`, calling `f(type, payload)` for each.
fn attrs(mut b: &[u8], mut f: impl FnMut(u16, &[u8])) {
    while b.len() >= 4 {
        let len = u16_at(b, 0).unwrap_or(0) as usize;
        let kind = u16_at(b, 2).unwrap_or(0) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            return;
        }
        f(kind, &b[4..len]);
        let aligned = (len + 3) & !3;
        b = b.get(aligned..).unwrap_or(&[]);
    }
}

fn parse_reply(msg: &[u8]) -> Result<XdpState, io::Error> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed rtnetlink reply");
    let kind = u16_at(msg, 4).ok_or_else(bad)?;
    if kind == NLMSG_ERROR {
        let code = u32_at(msg, 16).ok_or_else(bad)? as i32;
        return Err(io::Error::from_raw_os_error(-code));
    }
    if kind != RTM_NEWLINK {
        return Err(bad());
    }
    let len = (u32_at(msg, 0).ok_or_else(bad)? as usize).min(msg.len());
    // nlmsghdr (16) + ifinfomsg (16), then the attributes.
    let body = msg.get(32..len).ok_or_else(bad)?;
    let mut state = XdpState {
        attached: XdpAttached::None,
        prog_id: 0,
        veth: false,
    };
    attrs(body, |t, payload| {
        if t == IFLA_LINKINFO {
            attrs(payload, |t, p| {
                if t == IFLA_INFO_KIND {
                    state.veth = p.split(|b| *b == 0).next() == Some(&b"veth"[..]);
                }
            });
        }
        if t != IFLA_XDP {
            return;
        }
        attrs(payload, |t, p| match t {
            IFLA_XDP_ATTACHED => {
                state.attached = match p.first().copied().unwrap_or(0) {
                    0 => XdpAttached::None,
                    1 => XdpAttached::Driver,
                    2 => XdpAttached::Generic,
                    3 => XdpAttached::Offload,
                    _ => XdpAttached::Multi,
                }
            }
            IFLA_XDP_PROG_ID => state.prog_id = u32_at(p, 0).unwrap_or(0),
            _ => {}
        });
    });
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn parses_xdp_attributes() {
        let mut nested = attr(IFLA_XDP_ATTACHED, &[2]);
        nested.extend(attr(IFLA_XDP_PROG_ID, &77u32.to_ne_bytes()));
        let mut body = attr(3, b"veth0\0");
        body.extend(attr(
            IFLA_LINKINFO | 0x8000,
            &attr(IFLA_INFO_KIND, b"veth\0"),
        ));
        body.extend(attr(IFLA_XDP | 0x8000, &nested));
        let mut msg = Vec::new();
        msg.extend_from_slice(&((32 + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
        msg.extend_from_slice(&[0u8; 26]);
        msg.extend(body);
        let s = parse_reply(&msg).unwrap();
        assert_eq!(
            s,
            XdpState {
                attached: XdpAttached::Generic,
                prog_id: 77,
                veth: true,
            }
        );
    }

    #[test]
    fn reports_netlink_errors() {
        let mut msg = Vec::new();
        msg.extend_from_slice(&36u32.to_ne_bytes());
        msg.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        msg.extend_from_slice(&[0u8; 10]);
        msg.extend_from_slice(&(-19i32).to_ne_bytes());
        msg.extend_from_slice(&[0u8; 16]);
        assert_eq!(parse_reply(&msg).unwrap_err().raw_os_error(), Some(19));
    }
}
