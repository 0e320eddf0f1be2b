//! The same-host TCP bypass on the real path: nginx as a reverse proxy in front of
//! `disgrafs serve`, both in a test cgroup with the bypass attached (by `disgrafs accel sockmap
//! --cgroup`), so the proxy → server hop goes through sk_msg. Uploads and Range downloads must
//! be byte-identical. And `disgrafs serve --accel sockmap` runs in a cgroup of its own and
//! leaves nothing behind when it stops. Needs root (skips with the reason otherwise; fails
//! instead under DISGRAFS_REQUIRE_PRIVILEGED=1).
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use disgrafs_accel::{
    harness::{self, CgroupGuard, ChildGuard as Proc},
    sockmap,
};

mod common;
use common::{BIN, http_with, provision};

/// Detaches the bypass from the test cgroup on drop; declared after the cgroup guard.
struct Detach(PathBuf);

impl Drop for Detach {
    fn drop(&mut self) {
        sockmap::detach_cgroup(&self.0).ok();
    }
}

fn nginx() -> Option<&'static str> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// A tool the test needs is missing: a skip, or a failure under DISGRAFS_REQUIRE_PRIVILEGED=1.
fn missing(what: &str) {
    if std::env::var(harness::REQUIRE_ENV).as_deref() == Ok("1") {
        panic!("{what} is not installed (scripts/deps.d/10-core.sh installs it)");
    }
    eprintln!("skipping: {what} is not installed");
}

/// A `disgrafs` command succeeded (else its stderr is the failure).
fn succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn can_run(name: &str) -> bool {
    if !harness::privileged_or_skip(name) {
        return false;
    }
    true
}

/// Starts `disgrafs serve` (extra args) from `cmd` and returns it with its address.
fn serve(cmd: Command, data: &Path, args: &[&str]) -> (Proc, String) {
    let (child, addr) = common::spawn_serve(cmd, data, args);
    (Proc(child), addr)
}

fn data(seed: u64, n: usize) -> Vec<u8> {
    // xorshift: fast, reproducible, incompressible enough for a proxy.
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn nginx_to_serve_through_the_bypass_is_byte_identical() {
    if !can_run("nginx_to_serve_through_the_bypass_is_byte_identical") {
        return;
    }
    if nginx().is_none() {
        return missing("nginx");
    }
    let dir = tempfile::tempdir().unwrap();
    let cg = CgroupGuard::new("proxy").unwrap();
    let out = Command::new(BIN)
        .args(["accel", "sockmap", "--cgroup"])
        .arg(cg.path())
        .output()
        .unwrap();
    succeeded(&out);
    let _detach = Detach(cg.path().to_path_buf());

    let (_server, addr) = serve(cg.command(None, BIN), &dir.path().join("data"), &[]);
    let token = provision(&dir.path().join("data"), &[]);
    // Request bodies streamed (not buffered to disk) and any size, as in front of uploads.
    let (_nginx, port) = disgrafs_bench::sockmap::start_proxy(
        &cg,
        dir.path(),
        &addr,
        "client_max_body_size 0; proxy_request_buffering off; proxy_buffering off;",
    )
    .unwrap();

    let http = http_with(Some(&token));
    let base = format!("http://127.0.0.1:{port}");
    let before = sockmap::counters(cg.path()).unwrap();
    for (i, size) in [1usize, 4096, 300_000, 24 << 20].into_iter().enumerate() {
        let body = data(i as u64 + 1, size);
        let r = http
            .put(format!("{base}/api/files"))
            .query(&[("name", format!("f{i}.bin"))])
            .body(body.clone())
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "upload of {size} bytes");
        let v: serde_json::Value = r.json().unwrap();
        let id = v["id"].as_str().unwrap().to_owned();
        let url = format!("{base}/api/files/{id}/content");
        let got = http.get(&url).send().unwrap().bytes().unwrap();
        assert!(got[..] == body[..], "download of {size} bytes differs");
        let n = size as u64;
        for (lo, hi) in [(0, 0), (0, n / 2), (n / 3, n - 1), (n - 1, n - 1)] {
            let r = http
                .get(&url)
                .header("Range", format!("bytes={lo}-{hi}"))
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 206, "range {lo}-{hi} of {n}");
            let part = r.bytes().unwrap();
            assert!(
                part[..] == body[lo as usize..=hi as usize],
                "range {lo}-{hi} of {n} differs"
            );
        }
    }
    let c = sockmap::counters(cg.path()).unwrap();
    // The proxy → server hop carried the uploads and downloads through the bypass.
    assert!(
        c.bytes_redirected - before.bytes_redirected > 2 * (24 << 20),
        "{c:?}"
    );
    assert!(c.sockets_added >= 2, "{c:?}");
    // The server's /metrics reads the same counters through the bypass's pins.
    let m = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let cgroup = cg.path().display().to_string();
    let line = format!("disgrafs_accel_sockmap_bytes_redirected_total{{cgroup=\"{cgroup}\"}} ");
    let redirected: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("{line} missing: {m}"))
        .parse()
        .unwrap();
    assert!(redirected >= c.bytes_redirected as f64, "{m}");
    assert!(
        m.contains("disgrafs_accel_attached{accelerator=\"sockmap\""),
        "{m}"
    );
}

#[test]
fn serve_with_accel_sockmap_runs_in_its_own_cgroup_and_cleans_up() {
    if !can_run("serve_with_accel_sockmap_runs_in_its_own_cgroup_and_cleans_up") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = serve(
        Command::new(BIN),
        &dir.path().join("data"),
        &["--accel", "sockmap"],
    );
    let pid = server.0.id();
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let name = format!("disgrafs-serve-{pid}");
    assert!(own.contains(&name), "{own}");
    let cgroup = sockmap::attached_cgroups()
        .into_iter()
        .find(|p| p.ends_with(&name))
        .expect("the bypass is attached to the server's cgroup");
    // A client outside the cgroup takes the normal path and gets its bytes.
    let body = data(9, 1 << 20);
    let http = http_with(Some(&provision(&dir.path().join("data"), &[])));
    let r = http
        .put(format!("http://{addr}/api/files?name=x.bin"))
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    drop(server); // SIGTERM: the server shuts down and detaches
    assert!(!cgroup.exists(), "the server's cgroup is removed");
    // (The proxy test may have its own attachment meanwhile: look at ours only.)
    assert!(!sockmap::attached_cgroups().contains(&cgroup));
}

#[test]
fn accel_sockmap_refuses_the_root_cgroup_in_one_line() {
    let Some(root) = harness::cgroup2_root() else {
        return;
    };
    let out = Command::new(BIN)
        .args(["accel", "sockmap", "--cgroup"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    if harness::skip_reason().is_none() {
        assert!(
            err.contains("refusing to attach to the root cgroup"),
            "{err}"
        );
    }
}

#[test]
fn bench_sockmap_measures_the_service_path_through_nginx_without_errors() {
    if !can_run("bench_sockmap_measures_the_service_path_through_nginx_without_errors") {
        return;
    }
    if nginx().is_none() || harness::which("wrk").is_none() {
        return missing("nginx or wrk");
    }
    let out = Command::new(BIN)
        .args([
            "bench",
            "sockmap",
            "--json",
            "--repeats",
            "1",
            "--round-trips",
            "100",
        ])
        .args(["--bulk-bytes", "1048576", "--service-seconds", "1"])
        .args(["--pgbench-seconds", "1"])
        .output()
        .unwrap();
    succeeded(&out);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    // pgbench against a local PostgreSQL in the bypassed cgroup (scripts/deps.d/60-postgres.sh
    // installs it; without it the rows are left out with a note).
    let pgbench: Vec<_> = rows
        .iter()
        .filter(|r| r["metric"].as_str().unwrap().starts_with("pgbench"))
        .collect();
    if std::env::var("DISGRAFS_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        assert_eq!(pgbench.len(), 2, "{rows:?}");
    }
    for r in pgbench {
        assert!(r["candidate"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["baseline"].as_f64().unwrap() > 0.0, "{r}");
    }
    // wrk errors (non-2xx, socket errors) fail the benchmark, so a row means zero errors.
    let service: Vec<_> = rows
        .iter()
        .filter(|r| r["metric"].as_str().unwrap().contains("via nginx"))
        .collect();
    assert_eq!(service.len(), 4, "{rows:?}");
    for r in service {
        assert_eq!(r["candidate_name"], "sockmap", "{r}");
        assert!(r["candidate"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["baseline"].as_f64().unwrap() > 0.0, "{r}");
    }
    assert!(sockmap::attached_cgroups().is_empty());
}
