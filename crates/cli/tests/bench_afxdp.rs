//! `disgrafs bench afxdp` runs on its own namespaces, reports every row of its table with both
//! sides measured, and leaves no namespace, pin or process behind. A one-second, one-round run:
//! no figure is asserted, speed is the benchmark's output. Needs root, wrk, curl and ethtool
//! (skips with the reason otherwise; fails instead under DISGRAFS_REQUIRE_PRIVILEGED=1).
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::BIN;
use disgrafs_accel::harness::{self, which};
use std::process::Command;

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
