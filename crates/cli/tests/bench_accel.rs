//! `disgrafs bench accel`: a one-second smoke run prints every row for both modes and writes
//! its Markdown and plots; an interrupted run removes its namespaces, cgroup and pins; without
//! root it refuses in one line. The privileged tests need root (they skip with the reason
//! otherwise; fail instead under DISGRAFS_REQUIRE_PRIVILEGED=1). No timing is asserted.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::BIN;
use disgrafs_accel::harness;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Both benchmarks attach to an interface of the same name: one at a time.
fn lock() -> std::sync::MutexGuard<'static, ()> {
    static L: std::sync::Mutex<()> = std::sync::Mutex::new(());
    L.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a bench process with this PID may have left: namespaces, cgroups (both named
/// `dgf<pid>-…` by the harness) and the balancer's pins.
fn leftovers(pid: u32) -> Vec<String> {
    let prefix = format!("dgf{pid}-");
    let mut left = Vec::new();
    let mut dirs = vec![Path::new("/run/netns").to_path_buf()];
    dirs.extend(harness::cgroup2_root());
    for dir in dirs {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                left.push(e.path().display().to_string());
            }
        }
    }
    let pins = Path::new(disgrafs_accel::pin::ROOT)
        .join("cpu-balance")
        .join(disgrafs_accel::pin::CURRENT_NETNS)
        .join("dgf-b");
    if pins.exists() {
        left.push(pins.display().to_string());
    }
    left
}

#[test]
fn bench_accel_prints_every_row_for_both_modes_and_cleans_up() {
    if !harness::privileged_or_skip("bench_accel_prints_every_row_for_both_modes_and_cleans_up") {
        return;
    }
    let _g = lock();
    let out_dir = tempfile::tempdir().unwrap();
    let child = Command::new(BIN)
        .args([
            "bench",
            "accel",
            "--duration",
            "1",
            "--repeats",
            "1",
            "--json",
            "--out",
        ])
        .arg(out_dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let metrics: Vec<&str> = rows.iter().filter_map(|r| r["metric"].as_str()).collect();
    for m in [
        "peak single-CPU utilisation",
        "network throughput (server veth, rx+tx)",
        "disk write rate",
        "disk read rate",
        "share of time on IO (busiest disk)",
        "TCP InSegs",
        "TCP OutSegs",
        "sockets in use (mean)",
        "request rate",
        "p99 latency (4 KiB GETs and queries)",
        "failed requests",
    ] {
        assert!(metrics.contains(&m), "{m} missing from {metrics:?}");
    }
    let row = |m: &str| rows.iter().find(|r| r["metric"] == m).unwrap();
    for r in &rows {
        assert_eq!(r["baseline_name"], "no accel", "{r}");
        assert_eq!(r["candidate_name"], "cpu-balance+http-trace", "{r}");
        assert!(r["spread"]["baseline"].is_array(), "{r}");
    }
    // Both runs carried real traffic through the veth and nothing failed.
    for side in ["baseline", "candidate"] {
        assert!(
            row("request rate")[side].as_f64().unwrap() > 0.0,
            "{rows:?}"
        );
        assert!(row("TCP InSegs")[side].as_f64().unwrap() > 0.0, "{rows:?}");
        assert!(
            row("network throughput (server veth, rx+tx)")[side]
                .as_f64()
                .unwrap()
                > 0.0,
            "{rows:?}"
        );
        assert_eq!(row("failed requests")[side], 0.0, "{rows:?}");
    }
    let md = std::fs::read_to_string(out_dir.path().join("accel.md")).unwrap();
    assert!(
        md.contains("| peak single-CPU utilisation | % | no accel |"),
        "{md}"
    );
    for plot in ["peak-cpu", "network", "disk-write", "tcp-in"] {
        let svg = std::fs::read_to_string(out_dir.path().join(format!("accel-{plot}.svg")))
            .unwrap_or_else(|e| panic!("{plot}: {e}"));
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{plot}: {svg}"
        );
    }
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

#[test]
fn bench_accel_removes_its_host_when_interrupted() {
    if !harness::privileged_or_skip("bench_accel_removes_its_host_when_interrupted") {
        return;
    }
    let _g = lock();
    let mut child = Command::new(BIN)
        .args(["bench", "accel", "--duration", "30", "--repeats", "3"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("test host ready") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "bench exited before building its host"
        );
    }
    assert!(
        !leftovers(pid).is_empty(),
        "the host is there while it runs"
    );
    // Into the first run: the server is up (and, on an accelerated run, attached).
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: kill(2) on the PID of our own child, not yet reaped.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let until = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > until {
            child.kill().ok();
            panic!("bench did not stop within 90 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(!status.success(), "{rest}");
    assert!(rest.contains("interrupted"), "{rest}");
    assert_eq!(leftovers(pid), Vec::<String>::new(), "{rest}");
}

#[test]
fn bench_accel_refuses_without_root_in_one_line() {
    if harness::which("setpriv").is_none() {
        eprintln!("skipping bench_accel_refuses_without_root_in_one_line: no setpriv");
        return;
    }
    // As nobody with no capabilities (when the tests run as root), or as the user itself.
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
            BIN,
        ]);
        c
    } else {
        Command::new(BIN)
    };
    let out = cmd
        .args(["bench", "accel", "--duration", "1", "--repeats", "1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bench accel needs root"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
