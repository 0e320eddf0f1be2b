//! The HTTP socket filter in the kernel, run over hand-made frames with BPF_PROG_TEST_RUN: every
//! header shape the filter must walk, and what it must drop. Needs root (skips with the reason
//! otherwise; fails instead under DISGRAFS_REQUIRE_PRIVILEGED=1).
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;

use aya::programs::SocketFilter;
use disgrafs_accel::{
    harness::{
        self,
        packet::{FrameSpec, frame},
    },
    http,
};

const SNAP_LEN: u32 = 8192;

fn verdicts(cases: &[(&str, Vec<u8>)]) -> Vec<(String, u32)> {
    let ebpf = http::load_filter().expect("the filter loads and verifies");
    let prog: &SocketFilter = ebpf
        .program(http::FILTER_PROGRAM)
        .unwrap()
        .try_into()
        .unwrap();
    let fd = prog.fd().unwrap();
    // BPF_PROG_TEST_RUN strips an Ethernet header before running a socket filter (its skb starts
    // at the network header), while a SOCK_RAW packet socket runs it on the whole frame: a dummy
    // 14-byte header in front makes the test see what the socket sees.
    cases
        .iter()
        .map(|(what, f)| {
            let data = [&[0u8; 12][..], &[0x08, 0x00], f].concat();
            (
                what.to_string(),
                common::test_run(fd, &data).unwrap_or_else(|e| panic!("{what}: test run: {e}")),
            )
        })
        .collect()
}

#[test]
fn keeps_http_requests_of_every_header_shape() {
    if !harness::privileged_or_skip("keeps_http_requests_of_every_header_shape") {
        return;
    }
    let get = b"GET /api/files HTTP/1.1\r\nHost: h\r\n\r\n";
    let long_path = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(400));
    let keep = [
        (
            "ipv4",
            frame(&FrameSpec {
                payload: get,
                ..Default::default()
            }),
        ),
        (
            "ipv4 options + tcp options",
            frame(&FrameSpec {
                payload: get,
                ip_opts: 12,
                tcp_opts: 20,
                ..Default::default()
            }),
        ),
        (
            "one vlan",
            frame(&FrameSpec {
                payload: get,
                vlans: 1,
                ..Default::default()
            }),
        ),
        (
            "two vlans",
            frame(&FrameSpec {
                payload: get,
                vlans: 2,
                ..Default::default()
            }),
        ),
        (
            "ipv6",
            frame(&FrameSpec {
                payload: get,
                v6: true,
                ..Default::default()
            }),
        ),
        (
            "ipv6 + hop-by-hop + vlan",
            frame(&FrameSpec {
                payload: get,
                v6: true,
                v6_ext: true,
                vlans: 1,
                tcp_opts: 8,
                ..Default::default()
            }),
        ),
        (
            "POST http/1.0",
            frame(&FrameSpec {
                payload: b"POST /x HTTP/1.0\n\n",
                ..Default::default()
            }),
        ),
        (
            "extension method",
            frame(&FrameSpec {
                payload: b"PROPFIND /dav/ HTTP/1.1\r\n\r\n",
                ..Default::default()
            }),
        ),
        (
            "OPTIONS *",
            frame(&FrameSpec {
                payload: b"OPTIONS * HTTP/1.1\r\n\r\n",
                ..Default::default()
            }),
        ),
        (
            "line longer than the window",
            frame(&FrameSpec {
                payload: long_path.as_bytes(),
                ..Default::default()
            }),
        ),
        (
            "split request line (first part)",
            frame(&FrameSpec {
                payload: b"GET /spl",
                ..Default::default()
            }),
        ),
    ];
    for (what, v) in verdicts(&keep) {
        assert_eq!(v, SNAP_LEN, "{what} was not kept");
    }
}

#[test]
fn drops_everything_else() {
    if !harness::privileged_or_skip("drops_everything_else") {
        return;
    }
    let get = b"GET / HTTP/1.1\r\n\r\n";
    let full = frame(&FrameSpec {
        payload: get,
        ..Default::default()
    });
    let mut garbage = vec![0u8; 200];
    for (i, b) in garbage.iter_mut().enumerate() {
        *b = (i * 37 % 251) as u8;
    }
    let drop = [
        (
            "udp carrying a request",
            frame(&FrameSpec {
                proto: 17,
                payload: get,
                ..Default::default()
            }),
        ),
        (
            "tcp without payload",
            frame(&FrameSpec {
                payload: b"",
                ..Default::default()
            }),
        ),
        (
            "tls",
            frame(&FrameSpec {
                payload: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                ..Default::default()
            }),
        ),
        (
            "ssh banner",
            frame(&FrameSpec {
                payload: b"SSH-2.0-OpenSSH_9.6\r\n",
                ..Default::default()
            }),
        ),
        (
            "http response",
            frame(&FrameSpec {
                payload: b"HTTP/1.1 200 OK\r\n\r\n",
                ..Default::default()
            }),
        ),
        (
            "http/2 preface",
            frame(&FrameSpec {
                payload: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                ..Default::default()
            }),
        ),
        (
            "lower-case method",
            frame(&FrameSpec {
                payload: b"get / HTTP/1.1\r\n",
                ..Default::default()
            }),
        ),
        (
            "body continuation",
            frame(&FrameSpec {
                payload: b"{\"name\": \"x\"}\r\n",
                ..Default::default()
            }),
        ),
        ("truncated in ip header", full[..24].to_vec()),
        ("truncated in tcp header", full[..44].to_vec()),
        ("garbage", garbage.clone()),
        (
            "garbage after ethernet",
            [&full[..14], &garbage[..]].concat(),
        ),
        ("arp", {
            let mut f = full.clone();
            f[12..14].copy_from_slice(&[0x08, 0x06]);
            f
        }),
    ];
    for (what, v) in verdicts(&drop) {
        assert_eq!(v, 0, "{what} was kept");
    }
}
