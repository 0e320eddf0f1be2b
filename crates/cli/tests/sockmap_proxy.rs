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
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use disgrafs_accel::{
    harness::{self, CgroupGuard},
    sockmap,
};

mod common;
use common::BIN;

/// A child process stopped with SIGTERM (nginx's master takes its workers along), then killed.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the PID of a child we started and have not reaped.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

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

fn can_run(name: &str) -> bool {
    if !harness::privileged_or_skip(name) {
        return false;
    }
    true
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16) {
    let until = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
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
    let Some(nginx_bin) = nginx() else {
        if std::env::var(harness::REQUIRE_ENV).as_deref() == Ok("1") {
            panic!("nginx is not installed (scripts/deps.d/10-core.sh installs nginx-light)");
        }
        eprintln!("skipping: nginx is not installed (apt-get install nginx-light)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cg = CgroupGuard::new("proxy").unwrap();
    let out = Command::new(BIN)
        .args(["accel", "sockmap", "--cgroup"])
        .arg(cg.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _detach = Detach(cg.path().to_path_buf());

    let (_server, addr) = serve(cg.command(None, BIN), &dir.path().join("data"), &[]);
    let port = free_port();
    let root = dir.path().join("nginx");
    for d in ["tmp", "logs"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let conf = format!(
        "user root root; daemon off; master_process on; worker_processes 2; pid {r}/nginx.pid;
error_log {r}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off; client_body_temp_path {r}/tmp; proxy_temp_path {r}/tmp;
  client_max_body_size 0; proxy_request_buffering off; proxy_buffering off;
  upstream disgrafs {{ server {addr}; keepalive 16; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://disgrafs; proxy_http_version 1.1; proxy_set_header Connection \"\";
      proxy_set_header Host {addr};
    }}
  }}
}}
",
        r = root.display()
    );
    std::fs::write(root.join("nginx.conf"), conf).unwrap();
    let _nginx = Proc(
        cg.command(None, nginx_bin)
            .arg("-c")
            .arg(root.join("nginx.conf"))
            .arg("-p")
            .arg(&root)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(port);

    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
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
    let http = reqwest::blocking::Client::new();
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
