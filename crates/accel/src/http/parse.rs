//! User-space parsing of the frames the socket filter kept: the same header walk as the BPF side
//! (Ethernet, VLAN tags, IPv4/IPv6 with extension headers, TCP), then the HTTP/1.x request line
//! and the Host header. The kernel only pre-selects; everything is validated again here, so a frame
//! the filter let through by mistake is ignored, never trusted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The TCP payload of a frame, with its endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: &'a [u8],
}

/// Shortest and longest methods accepted (MIN_METHOD and MAX_METHOD in http_filter.bpf.c).
pub const MIN_METHOD: usize = 3;
pub const MAX_METHOD: usize = 20;
/// Request targets longer than this are cut (and marked with a trailing "...").
pub const MAX_TARGET: usize = 2048;
/// Host values longer than this are cut.
pub const MAX_HOST: usize = 255;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]]))
}

/// Walks an Ethernet frame down to its TCP payload. `None` for anything that is not a complete
/// TCP header over IPv4/IPv6 (or a non-first fragment).
pub fn tcp_segment(frame: &[u8]) -> Option<TcpSegment<'_>> {
    let mut proto = be16(frame, 12)?;
    let mut off = 14;
    for _ in 0..2 {
        if proto != 0x8100 && proto != 0x88A8 {
            break;
        }
        proto = be16(frame, off + 2)?;
        off += 4;
    }
    let (src_ip, dst_ip, l4, end): (IpAddr, IpAddr, u8, usize) = match proto {
        0x0800 => {
            let ip = frame.get(off..off + 20)?;
            let ihl = usize::from(ip[0] & 0x0F) * 4;
            if ip[0] >> 4 != 4 || ihl < 20 || be16(ip, 6)? & 0x1FFF != 0 {
                return None;
            }
            let tot = usize::from(be16(ip, 2)?);
            if tot < ihl {
                return None;
            }
            let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
            let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
            let end = (off + tot).min(frame.len());
            let (p, start) = (ip[9], off + ihl);
            off = start;
            (src.into(), dst.into(), p, end)
        }
        0x86DD => {
            let ip = frame.get(off..off + 40)?;
            if ip[0] >> 4 != 6 {
                return None;
            }
            let end = (off + 40 + usize::from(be16(ip, 4)?)).min(frame.len());
            let src: [u8; 16] = ip[8..24].try_into().ok()?;
            let dst: [u8; 16] = ip[24..40].try_into().ok()?;
            let mut next = ip[6];
            off += 40;
            for _ in 0..4 {
                match next {
                    0 | 43 | 60 => {
                        let h = frame.get(off..off + 2)?;
                        next = h[0];
                        off += (usize::from(h[1]) + 1) * 8;
                    }
                    44 => {
                        let h = frame.get(off..off + 8)?;
                        if be16(h, 2)? & 0xFFF8 != 0 {
                            return None;
                        }
                        next = h[0];
                        off += 8;
                    }
                    _ => break,
                }
            }
            (
                Ipv6Addr::from(src).into(),
                Ipv6Addr::from(dst).into(),
                next,
                end,
            )
        }
        _ => return None,
    };
    if l4 != 6 {
        return None;
    }
    let tcp = frame.get(off..off + 20)?;
    let doff = usize::from(tcp[12] >> 4) * 4;
    if doff < 20 {
        return None;
    }
    let (sport, dport) = (be16(tcp, 0)?, be16(tcp, 2)?);
    let payload = frame.get(off + doff..end)?;
    Some(TcpSegment {
        src: SocketAddr::new(src_ip, sport),
        dst: SocketAddr::new(dst_ip, dport),
        payload,
    })
}

/// What a TCP payload holds, as far as the observer cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A request line, complete.
    Request(RequestHead),
    /// A request line that does not end in this segment (split across segments, or longer than
    /// what was captured): method and the start of the target only.
    SplitLine {
        method: String,
        target_prefix: String,
    },
    /// Not the start of an HTTP/1.x request.
    NotHttp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    /// Minor version: 0 or 1 (HTTP/1.0, HTTP/1.1).
    pub minor: u8,
    pub host: Option<String>,
    /// Bytes of the request head (request line + headers + blank line) when it ends in the
    /// segment.
    pub head_len: Option<usize>,
    /// Content-Length, when declared in the captured headers.
    pub content_length: Option<u64>,
}

impl RequestHead {
    /// The request's size as far as can be told: the head plus its declared body, or the
    /// captured segment when the head continues in later segments.
    pub fn bytes(&self, segment_len: usize) -> u64 {
        match self.head_len {
            Some(h) => h as u64 + self.content_length.unwrap_or(0),
            None => segment_len as u64,
        }
    }
}

fn is_method_char(c: u8) -> bool {
    c.is_ascii_uppercase() || c == b'-' || c == b'_'
}

fn lossy_cut(b: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned();
    if b.len() > max { format!("{s}...") } else { s }
}

/// Classifies a TCP payload.
pub fn parse_payload(p: &[u8]) -> Payload {
    let m = p
        .iter()
        .take(MAX_METHOD + 1)
        .take_while(|c| is_method_char(**c))
        .count();
    if !(MIN_METHOD..=MAX_METHOD).contains(&m) || p.get(m) != Some(&b' ') {
        return Payload::NotHttp;
    }
    let method = String::from_utf8_lossy(&p[..m]).into_owned();
    let rest = &p[m + 1..];
    let Some(first) = rest.first() else {
        return Payload::NotHttp;
    };
    if !(first.is_ascii_alphanumeric() || matches!(first, b'/' | b'*' | b'[')) {
        return Payload::NotHttp;
    }
    let Some(eol) = rest.iter().position(|c| *c == b'\n') else {
        // Controls in what we have mean garbage, not a line still to come.
        if rest.iter().any(|c| c.is_ascii_control()) {
            return Payload::NotHttp;
        }
        let target_prefix = rest.split(|c| *c == b' ').next().unwrap_or_default();
        return Payload::SplitLine {
            method,
            target_prefix: lossy_cut(target_prefix, MAX_TARGET),
        };
    };
    let line = rest[..eol].strip_suffix(b"\r").unwrap_or(&rest[..eol]);
    let Some(sp) = line.iter().rposition(|c| *c == b' ') else {
        return Payload::NotHttp;
    };
    let (target, version) = (&line[..sp], &line[sp + 1..]);
    let minor = match version {
        b"HTTP/1.0" => 0,
        b"HTTP/1.1" => 1,
        v if v.len() == 8 && v.starts_with(b"HTTP/1.") && v[7].is_ascii_digit() => v[7] - b'0',
        _ => return Payload::NotHttp,
    };
    if target.is_empty() || target.iter().any(|c| *c == b' ' || c.is_ascii_control()) {
        return Payload::NotHttp;
    }
    // Headers: up to the blank line or the end of what was captured.
    let mut host = None;
    let mut content_length = None;
    let mut head_len = None;
    let mut pos = m + 1 + eol + 1;
    while pos < p.len() {
        let Some(n) = p[pos..].iter().position(|c| *c == b'\n') else {
            break;
        };
        let raw = &p[pos..pos + n];
        let h = raw.strip_suffix(b"\r").unwrap_or(raw);
        pos += n + 1;
        if h.is_empty() {
            head_len = Some(pos);
            break;
        }
        let Some(colon) = h.iter().position(|c| *c == b':') else {
            continue;
        };
        let (name, value) = (&h[..colon], h[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"host") && host.is_none() {
            host = Some(lossy_cut(value, MAX_HOST));
        } else if name.eq_ignore_ascii_case(b"content-length") {
            content_length = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        }
    }
    Payload::Request(RequestHead {
        method,
        target: lossy_cut(target, MAX_TARGET),
        minor,
        host,
        head_len,
        content_length,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::packet::{FrameSpec, frame};

    #[test]
    fn walks_all_header_shapes() {
        let get = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
        for spec in [
            FrameSpec {
                payload: get,
                ..Default::default()
            },
            FrameSpec {
                payload: get,
                vlans: 1,
                ..Default::default()
            },
            FrameSpec {
                payload: get,
                vlans: 2,
                ip_opts: 8,
                tcp_opts: 12,
                ..Default::default()
            },
            FrameSpec {
                payload: get,
                v6: true,
                ..Default::default()
            },
            FrameSpec {
                payload: get,
                v6: true,
                v6_ext: true,
                vlans: 1,
                tcp_opts: 20,
                ..Default::default()
            },
        ] {
            let f = frame(&spec);
            let seg = tcp_segment(&f).expect("a TCP segment");
            assert_eq!(seg.payload, get);
            assert_eq!(seg.dst.port(), 8080);
        }
        // Ethernet padding after a short datagram is not payload.
        let mut f = frame(&FrameSpec {
            payload: b"GET",
            ..Default::default()
        });
        f.extend_from_slice(&[0; 10]);
        assert_eq!(tcp_segment(&f).unwrap().payload, b"GET");
        // UDP and truncated frames are not TCP segments.
        assert!(
            tcp_segment(&frame(&FrameSpec {
                proto: 17,
                payload: get,
                ..Default::default()
            }))
            .is_none()
        );
        let f = frame(&FrameSpec {
            payload: get,
            ..Default::default()
        });
        assert!(tcp_segment(&f[..40]).is_none());
        assert!(tcp_segment(&[0u8; 5]).is_none());
    }

    #[test]
    fn request_lines() {
        let Payload::Request(r) =
            parse_payload(b"POST /api/files?x=1 HTTP/1.1\r\nhOsT: example.test:8080\r\nContent-Length: 10\r\n\r\n0123456789")
        else {
            panic!("not a request")
        };
        assert_eq!(
            (r.method.as_str(), r.target.as_str(), r.minor),
            ("POST", "/api/files?x=1", 1)
        );
        assert_eq!(r.host.as_deref(), Some("example.test:8080"));
        assert_eq!(r.head_len, Some(77));
        assert_eq!(r.bytes(87), 87);
        let Payload::Request(r) = parse_payload(b"PROPFIND * HTTP/1.0\n\n") else {
            panic!()
        };
        assert_eq!(
            (r.method.as_str(), r.target.as_str(), r.minor, r.host),
            ("PROPFIND", "*", 0, None)
        );
        // Head continuing in a later segment: size is what was seen.
        let Payload::Request(r) = parse_payload(b"GET / HTTP/1.1\r\nHost: a\r\n") else {
            panic!()
        };
        assert_eq!((r.head_len, r.bytes(25)), (None, 25));
        assert_eq!(
            parse_payload(b"GET /very/lo"),
            Payload::SplitLine {
                method: "GET".into(),
                target_prefix: "/very/lo".into()
            }
        );
        for bad in [
            &b"get / HTTP/1.1\r\n"[..],
            b"GET / HTTP/2.0\r\n",
            b"GET  / HTTP/1.1\r\n",
            b"GET / HTTP/1.1 extra\r\n",
            b"\x16\x03\x01\x02\x00",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"GET",
            b"GET \x01\x02",
            b"T /split HTTP/1.1\r\n",
            b"",
        ] {
            assert_eq!(
                parse_payload(bad),
                Payload::NotHttp,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
