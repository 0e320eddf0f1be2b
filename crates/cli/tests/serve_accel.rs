//! `disgrafs serve --accel http-trace,cpu-balance --iface IF`: the server runs in namespace b of
//! a veth pair (never the root namespace), attaches both accelerators to its own interface, shows
//! their counters in /metrics, keeps answering when they are detached underneath, and detaches
//! what it attached on shutdown. Needs root (skips with the reason otherwise; fails instead under
//! DISGRAFS_REQUIRE_PRIVILEGED=1). The refusals run everywhere.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::{BIN, provision};
use disgrafs_accel::harness::{self, NetNsGuard, VethNet, VethOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A serve process we started, killed by its PID when dropped.
/// The server, its address and its token.
struct Serve(Child, String, String);

impl Drop for Serve {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

fn start(net: &VethNet, data: &std::path::Path) -> Serve {
    let token = provision(data, &[]);
    let mut child = net
        .b
        .command(BIN)
        .args(["serve", "--listen", &format!("{}:0", VethNet::ADDR_B)])
        .args(disgrafs_bench::PLAIN_UNBOUNDED)
        .arg("--data-dir")
        .arg(data)
        .args(["--workers", "1", "--accel", "http-trace,cpu-balance"])
        .args(["--iface", VethNet::IF_B])
        .env("DISGRAFS_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("serve did not start: {line:?}"))
        .to_string();
    Serve(child, addr, token)
}

/// One HTTP/1.1 exchange from inside namespace `ns`; returns the body. From namespace a the
/// request crosses the veth pair into the server's balanced interface.
fn http(ns: &NetNsGuard, s: &Serve, method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let (addr, token, method, path, body) = (
        s.1.clone(),
        s.2.clone(),
        method.to_string(),
        path.to_string(),
        body.to_vec(),
    );
    ns.run(move || {
        let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(10))
            .map_err(|e| harness_err(&e))?;
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes())
            .and_then(|_| s.write_all(&body))
            .map_err(|e| harness_err(&e))?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).map_err(|e| harness_err(&e))?;
        let at = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(out.len(), |i| i + 4);
        Ok(out.split_off(at))
    })
    .unwrap()
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&b).into_owned()
}

fn harness_err(e: &std::io::Error) -> disgrafs_accel::AccelError {
    disgrafs_accel::AccelError::Harness(e.to_string())
}

fn sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn pinned(iface: &str) -> bool {
    disgrafs_accel::pin::attachments()
        .iter()
        .any(|a| a.iface == iface)
}

fn term(mut s: Serve) {
    unsafe { libc::kill(s.0.id() as i32, libc::SIGTERM) };
    let status = s.0.wait().unwrap();
    assert!(status.success(), "serve exited with {status}");
}

#[test]
fn serve_attaches_accelerators_to_its_interface() {
    if !harness::privileged_or_skip("serve_attaches_accelerators_to_its_interface") {
        return;
    }
    let net = VethNet::new(VethOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = start(&net, &dir.path().join("data"));
    assert!(pinned(VethNet::IF_B), "cpu-balance is not pinned");
    // Real TCP from the peer namespace through the balanced veth (this timed out while the
    // balancer ran in native mode on veth: see cpu_balance::mode_for): small uploads, one of
    // 4 MiB (many segments, GSO from the peer), and the same bytes back.
    for i in 0..4 {
        http(
            &net.a,
            &s,
            "PUT",
            &format!("/api/files?name=f{i}.txt"),
            format!("file {i}").as_bytes(),
        );
    }
    let big: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let rec: serde_json::Value =
        serde_json::from_slice(&http(&net.a, &s, "PUT", "/api/files?name=big.bin", &big)).unwrap();
    let id = rec["id"].as_str().unwrap_or_else(|| panic!("{rec}"));
    let back = http(&net.a, &s, "GET", &format!("/api/files/{id}/content"), b"");
    assert!(
        back == big,
        "downloaded {} bytes differ from the upload",
        back.len()
    );
    let m = text(http(&net.a, &s, "GET", "/metrics", b""));
    assert!(
        sum(&m, "disgrafs_accel_cpu_balance_redirected_total") >= 20.0,
        "the peer's TCP went through the balancer: {m}"
    );
    assert!(
        m.contains("disgrafs_accel_attached{accelerator=\"cpu_balance\",iface=\"dgf-b\""),
        "{m}"
    );
    assert!(
        m.contains("disgrafs_accel_attached{accelerator=\"http_trace\",iface=\"dgf-b\""),
        "{m}"
    );
    assert!(
        sum(&m, "disgrafs_accel_cpu_balance_received_total") > 0.0,
        "{m}"
    );
    assert!(
        m.contains(
            "disgrafs_accel_http_trace_filter_frames_total{iface=\"dgf-b\",verdict=\"seen\"}"
        ),
        "{m}"
    );
    assert!(
        m.contains("disgrafs_scrape_ok{section=\"accel_pinned\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("disgrafs_scrape_ok{section=\"accel_http_trace\"} 1"),
        "{m}"
    );

    // Detached underneath (another process): /metrics still answers, without the balancer.
    let out = net
        .b
        .command(BIN)
        .args(["accel", "detach"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = text(http(&net.a, &s, "GET", "/metrics", b""));
    assert!(m.contains("disgrafs_store_files 5"), "{m}");
    assert!(!m.contains("disgrafs_accel_cpu_balance_received"), "{m}");
    assert!(
        m.contains("disgrafs_accel_http_trace_filter_frames_total"),
        "{m}"
    );
    term(s);

    // A clean shutdown detaches what the server attached.
    let s = start(&net, &dir.path().join("data"));
    assert!(pinned(VethNet::IF_B));
    term(s);
    assert!(
        !pinned(VethNet::IF_B),
        "cpu-balance left pinned after shutdown"
    );
}

#[test]
fn accel_flags_are_refused_without_an_interface() {
    let dir = tempfile::tempdir().unwrap();
    for (args, why) in [
        (vec!["--accel", "cpu-balance"], "need --iface"),
        (vec!["--iface", "lo"], "--iface is only for --accel"),
        (
            vec!["--accel", "http-trace", "--iface", "lo", "--weights", "0:1"],
            "--weights is only for --accel cpu-balance",
        ),
        (
            vec!["--accel", "warp-drive", "--iface", "lo"],
            "invalid value 'warp-drive'",
        ),
    ] {
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{args:?}: {err}");
    }
}
