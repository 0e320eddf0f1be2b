//! `disgrafs bench afxdp` runs on its own namespaces, reports every row of its table with both
//! sides measured, and leaves no namespace, pin or process behind. A one-second, one-round run:
//! no figure is asserted, speed is the benchmark's output. Needs root, wrk, curl and ethtool
//! (skips with the reason otherwise; fails instead under DISGRAFS_REQUIRE_PRIVILEGED=1).
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::{BIN, Server};
use disgrafs_accel::harness::{self, VethNet, VethOptions, which};
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn bench_afxdp_measures_both_paths_and_leaves_nothing_behind() {
    let name = "bench_afxdp_measures_both_paths_and_leaves_nothing_behind";
    if !harness::privileged_or_skip(name) {
        return;
    }
    for tool in ["wrk", "curl", "ethtool"] {
        if which(tool).is_none() {
            assert!(
                std::env::var(harness::REQUIRE_ENV).as_deref() != Ok("1"),
                "{name}: {tool} is not installed"
            );
            eprintln!("skipping {name}: {tool} is not installed");
            return;
        }
    }
    let before = namespaces();
    let pins_before = pins();
    let out = Command::new(BIN)
        .args([
            "bench",
            "afxdp",
            "--seconds",
            "1",
            "--repeats",
            "1",
            "--json",
        ])
        .env("DISGRAFS_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench afxdp failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    // Rate, p50 and p99 for the content and the record GET; two raw-receive rows and the
    // offered load.
    assert_eq!(rows.len(), 9, "{rows:#?}");
    for r in &rows {
        assert!(
            r["baseline"].as_f64().is_some_and(|v| v > 0.0)
                && r["candidate"].as_f64().is_some_and(|v| v > 0.0),
            "a side was not measured: {r}"
        );
    }
    assert!(
        rows.iter()
            .any(|r| r["candidate_name"] == "AF_XDP fast path")
    );
    let leaked: Vec<_> = namespaces()
        .into_iter()
        .filter(|n| !before.contains(n))
        .collect();
    assert!(leaked.is_empty(), "namespaces left behind: {leaked:?}");
    assert_eq!(pins(), pins_before, "pins left behind");
}

/// When the fast path's loop ends by itself (here: its interface is deleted under it), `disgrafs
/// accel afxdp` does not sit waiting for Ctrl-C while the port goes unanswered: it exits
/// non-zero with one line saying why, and leaves no pin behind.
#[test]
fn accel_afxdp_exits_with_its_error_when_its_loop_ends() {
    let name = "accel_afxdp_exits_with_its_error_when_its_loop_ends";
    if !harness::privileged_or_skip(name) {
        return;
    }
    for tool in ["curl", "ethtool"] {
        assert!(
            which(tool).is_some() || std::env::var(harness::REQUIRE_ENV).as_deref() != Ok("1"),
            "{name}: {tool} is not installed"
        );
        if which(tool).is_none() {
            eprintln!("skipping {name}: {tool} is not installed");
            return;
        }
    }
    let server = Server::start();
    let id = server.put_ok("small.txt", b"served by the fast path\n")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let net = VethNet::new(VethOptions { single_queue: true }).unwrap();
    let ok = net
        .a
        .command("ethtool")
        .args(["-K", VethNet::IF_A, "tx", "off"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let pins_before = pins();
    let mut fast = Command::new(BIN)
        .args(["accel", "afxdp", "--iface", VethNet::IF_B, "--netns"])
        .arg(net.b.name())
        .args(["--port", "8080", "--data-dir"])
        .arg(&server.data)
        .env("DISGRAFS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(fast.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("afxdp on"), "{line:?}");
    let out = net
        .a
        .command("curl")
        .args(["-s", "--max-time", "20", "-w", " %{http_code}"])
        .args(["-H", &format!("Authorization: Bearer {}", server.token)])
        .arg(format!(
            "http://{}:8080/api/files/{id}/content",
            VethNet::ADDR_B
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "served by the fast path\n 200"
    );
    // The interface goes away (both ends of the pair): the loop's sockets fail.
    let del = Command::new("ip")
        .args(["-n", net.b.name(), "link", "del", VethNet::IF_B])
        .status()
        .unwrap();
    assert!(del.success());
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = fast.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > until {
            fast.kill().ok();
            fast.wait().ok();
            panic!("accel afxdp still runs 30 s after its interface went away");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut fast.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "exited with {status}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("disgrafs: ")
            && lines[0].contains(VethNet::IF_B)
            && lines[0].matches("os error").count() == 1,
        "{err}"
    );
    assert_eq!(pins(), pins_before, "pins left behind");
}

/// Every path under disgrafs' pin root.
fn pins() -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            out.push(e.path());
            walk(&e.path(), out);
        }
    }
    let mut v = Vec::new();
    walk(std::path::Path::new(disgrafs_accel::pin::ROOT), &mut v);
    v.sort();
    v
}
