//! `disgrafs bench accel`: a one-second smoke run prints every row for every configuration
//! (the CPU balancer with the HTTP observer, the same-host bypass behind nginx, the AF_XDP fast
//! path), each beside its baseline, and writes its Markdown and plots; an interrupted run
//! removes its namespaces, cgroup and pins; without root it refuses in one line. The privileged
//! tests need root (they skip with the reason otherwise; fail instead under
//! DISGRAFS_REQUIRE_PRIVILEGED=1). No timing is asserted.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::BIN;
use disgrafs_accel::harness;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Both benchmarks attach to an interface of the same name: one at a time.
fn lock() -> std::sync::MutexGuard<'static, ()> {
    static L: std::sync::Mutex<()> = std::sync::Mutex::new(());
    L.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a bench process with this PID may have left: namespaces, cgroups (both named
/// `dgf<pid>-…` by the harness) and the accelerators' pins.
fn leftovers(pid: u32) -> Vec<String> {
    let prefix = format!("dgf{pid}-");
    let mut left = Vec::new();
    // Cgroups of its own that a suite makes under the one it runs in: `disgrafs-…-<pid>`.
    let suffix = format!("-{pid}");
    let mut dirs = vec![Path::new("/run/netns").to_path_buf()];
    dirs.extend(harness::cgroup2_root());
    dirs.extend(disgrafs_accel::sys::own_cgroup());
    for dir in dirs {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix)
                || (name.starts_with("disgrafs-") && name.ends_with(&suffix))
            {
                left.push(e.path().display().to_string());
            }
        }
    }
    // Pins of every accelerator: on its veth (named dgf-…) or its cgroup (dgf<pid>-…).
    for a in disgrafs_accel::pin::attachments() {
        if a.dir.to_string_lossy().contains("dgf") {
            left.push(a.dir.display().to_string());
        }
    }
    left
}

#[test]
fn bench_accel_prints_every_row_for_every_configuration_and_cleans_up() {
    if !harness::privileged_or_skip(
        "bench_accel_prints_every_row_for_every_configuration_and_cleans_up",
    ) {
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
    let configs = [
        ("cpu-balance+http-trace", "no accel", None),
        (
            "sockmap via nginx",
            "no accel via nginx",
            Some("bytes through the same-host bypass"),
        ),
        (
            "afxdp",
            "no accel",
            Some("requests answered by the AF_XDP fast path"),
        ),
    ];
    for r in &rows {
        assert!(
            configs
                .iter()
                .any(|(c, b, _)| r["candidate_name"] == *c && r["baseline_name"] == *b),
            "{r}"
        );
        assert!(r["spread"]["baseline"].is_array(), "{r}");
    }
    for (config, _, own) in configs {
        let row = |m: &str| {
            rows.iter()
                .find(|r| r["metric"] == m && r["candidate_name"] == config)
                .unwrap_or_else(|| panic!("{config}: no row {m}: {rows:?}"))
        };
        // Every run carried real traffic through the veth and nothing failed.
        for side in ["baseline", "candidate"] {
            assert!(
                row("request rate")[side].as_f64().unwrap() > 0.0,
                "{config}: {rows:?}"
            );
            assert!(
                row("network throughput (server veth, rx+tx)")[side]
                    .as_f64()
                    .unwrap()
                    > 0.0,
                "{config}: {rows:?}"
            );
            assert_eq!(row("failed requests")[side], 0.0, "{config}: {rows:?}");
        }
        assert!(
            row("TCP InSegs")["baseline"].as_f64().unwrap() > 0.0,
            "{rows:?}"
        );
        // The accelerator did its work: bytes through the bypass, requests on the fast path.
        if let Some(m) = own {
            assert!(
                row(m)["candidate"].as_f64().unwrap() > 0.0,
                "{config}: {rows:?}"
            );
            assert_eq!(row(m)["baseline"], 0.0, "{config}: {rows:?}");
        }
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

/// Starts `disgrafs bench ARGS`, interrupts it with SIGINT once its host exists and it is into
/// its first measurement, and checks that it stops, says so and leaves nothing behind.
fn interrupted(args: &[&str]) {
    let mut child = Command::new(BIN)
        .arg("bench")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let until = Instant::now() + Duration::from_secs(60);
    while leftovers(pid).is_empty() {
        assert!(
            Instant::now() < until && child.try_wait().unwrap().is_none(),
            "bench {args:?} built no host"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Into the first measurement (for accel: the server is up and, on an accelerated run,
    // attached).
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
            panic!("bench {args:?} did not stop within 90 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut rest = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut rest)
        .unwrap();
    assert!(!status.success(), "{args:?}: {rest}");
    assert!(rest.contains("interrupted"), "{args:?}: {rest}");
    assert_eq!(leftovers(pid), Vec::<String>::new(), "{args:?}: {rest}");
}

#[test]
fn benches_remove_their_hosts_when_interrupted() {
    if !harness::privileged_or_skip("benches_remove_their_hosts_when_interrupted") {
        return;
    }
    let _g = lock();
    interrupted(&["accel", "--duration", "30", "--repeats", "3"]);
    interrupted(&["cpu-balance", "--seconds", "10", "--repeats", "3"]);
    interrupted(&[
        "sockmap",
        "--round-trips",
        "2000000",
        "--service-seconds",
        "0",
    ]);
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
