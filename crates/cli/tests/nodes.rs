//! Scale-out with real servers, all started here on loopback ports: two `serve --workers 0`
//! nodes behind nginx (the load balancer), three `worker`s, metadata on PostgreSQL (the test
//! binary's private cluster) and blobs on SeaweedFS. Nothing is node-local: an upload begun on
//! one node resumes on the other, events reach subscribers of every node, a deletion is seen at
//! once everywhere, a worker or a node killed with SIGKILL loses nothing, and a PostgreSQL
//! restart gives 503s and then recovery without restarting disgrafs.
//!
//! One fixture serves every test of this file (starting it is most of the time): each test takes
//! it in turn, and restarts what it killed. Skipped with the reason without PostgreSQL,
//! SeaweedFS or nginx, unless the test command installed them (DISGRAFS_REQUIRE_POSTGRES,
//! DISGRAFS_REQUIRE_WEED, DISGRAFS_REQUIRE_NGINX), when that is a failure.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
#[path = "../../store/tests/support/pg.rs"]
mod pg;
#[path = "../../store/tests/weed/mod.rs"]
mod weed;

use common::{BIN, b3, bytes, free_port, http_with, provision};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, mpsc};
use std::time::{Duration, Instant};

/// Runs `f` on a thread that lives as long as the test binary. Children started there die with
/// the binary (`PR_SET_PDEATHSIG` follows the parent *thread*), not with the test that started
/// them.
fn on_keeper<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    type Job = Box<dyn FnOnce() + Send>;
    static KEEPER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let tx = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::spawn(move || {
            for job in rx {
                job();
            }
        });
        Mutex::new(tx)
    });
    let (rtx, rrx) = mpsc::channel();
    tx.lock()
        .unwrap()
        .send(Box::new(move || {
            rtx.send(f()).ok();
        }))
        .unwrap();
    rrx.recv()
        .expect("the keeper thread failed to start a process")
}

/// SIGKILL to the child when the thread that started it (the keeper) ends.
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; it runs in the child between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Starts `cmd` on the keeper thread and waits for its first line on stdout (the address, or
/// the worker's "running").
fn start_kept(mut cmd: Command, want: &'static str) -> Child {
    on_keeper(move || {
        cmd.env("AWS_ACCESS_KEY_ID", weed::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", weed::SECRET_KEY)
            .env("DISGRAFS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("start disgrafs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains(want), "{want:?} not in {line:?}");
        child
    })
}

struct Node {
    child: Child,
    port: u16,
    data: PathBuf,
}

impl Node {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

struct Fixture {
    cluster: &'static pg::Cluster,
    db: String,
    meta: String,
    blobs: String,
    _weed: weed::Weed,
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    workers: Vec<Child>,
    _nginx: Child,
    /// The load balancer's URL.
    lb: String,
}

impl Fixture {
    fn start_node(&self, port: u16, data: &Path) -> Node {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--workers", "0", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["--meta", &self.meta, "--blobs", &self.blobs, "--data-dir"])
            .arg(data);
        Node {
            child: start_kept(cmd, "listening on"),
            port,
            data: data.to_path_buf(),
        }
    }

    fn start_worker(meta: &str, blobs: &str, data: &Path) -> Child {
        let mut cmd = Command::new(BIN);
        // A short lease: a killed worker's job runs elsewhere within seconds.
        cmd.args(["worker", "--workers", "1", "--lease-secs", "3"])
            .args(["--meta", meta, "--blobs", blobs, "--data-dir"])
            .arg(data);
        start_kept(cmd, "tagging workers running")
    }

    /// Kills node `i` with SIGKILL and starts it again on its port and directory.
    fn kill_node(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.child.kill().ok();
        n.child.wait().ok();
    }

    fn restart_node(&mut self, i: usize) {
        let (port, data) = (self.nodes[i].port, self.nodes[i].data.clone());
        self.nodes[i] = self.start_node(port, &data);
    }

    fn psql(&self, sql: &str) -> String {
        self.cluster.psql(&self.db, sql).unwrap()
    }
}

fn nginx_binary() -> Option<&'static str> {
    let found = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if found.is_none() {
        assert!(
            std::env::var("DISGRAFS_REQUIRE_NGINX").as_deref() != Ok("1"),
            "nginx is required (DISGRAFS_REQUIRE_NGINX=1) but not installed"
        );
        eprintln!("skipped: nginx is not installed (scripts/test installs nginx-light)");
    }
    found
}

/// nginx in front of both nodes: round robin, the next node when one refuses the connection,
/// bodies streamed both ways (tus PATCHes, downloads, server-sent events).
fn start_nginx(nginx: &'static str, root: &Path, port: u16, nodes: &[u16]) -> Child {
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    let servers: String = nodes
        .iter()
        .map(|p| format!("server 127.0.0.1:{p} max_fails=1 fail_timeout=2s; "))
        .collect();
    let conf = format!(
        "daemon off; master_process off; pid {r}/nginx.pid; error_log {r}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {r}/tmp; proxy_temp_path {r}/tmp; fastcgi_temp_path {r}/tmp; uwsgi_temp_path {r}/tmp; scgi_temp_path {r}/tmp;
  upstream disgrafs {{ {servers} }}
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 0;
    location / {{
      proxy_pass http://disgrafs;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header Connection \"\";
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_read_timeout 300s;
      proxy_connect_timeout 2s;
      proxy_next_upstream error timeout non_idempotent;
    }}
  }}
}}\n",
        r = root.display()
    );
    let path = root.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let root = root.to_path_buf();
    let child = on_keeper(move || {
        let mut cmd = Command::new(nginx);
        cmd.arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        die_with_parent(&mut cmd);
        cmd.spawn().expect("start nginx")
    });
    let until = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "nginx did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn start() -> Option<Fixture> {
    let cluster = pg::cluster()?;
    let weed_bin = weed::weed_binary("nodes")?;
    let nginx = nginx_binary()?;
    let meta = cluster.create_db("nodes");
    let db = meta.rsplit('/').next().unwrap().to_string();
    let weed = on_keeper(move || weed::Weed::start(&weed_bin));
    weed.create_bucket("nodes");
    let blobs = format!("s3://nodes?endpoint={}", weed.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port()];
    let lb_port = free_port();
    let nginx = start_nginx(nginx, &dir.path().join("nginx"), lb_port, &ports);
    let mut fx = Fixture {
        cluster,
        db,
        meta,
        blobs,
        _weed: weed,
        nodes: Vec::new(),
        workers: Vec::new(),
        _nginx: nginx,
        lb: format!("http://127.0.0.1:{lb_port}"),
        dir,
    };
    // One token in the shared PostgreSQL serves every node.
    let token = provision(&fx.dir.path().join("node0"), &["--meta", &fx.meta]);
    assert!(!token.is_empty(), "cannot provision a token");
    TOKEN.set(token).ok();
    for (i, port) in ports.into_iter().enumerate() {
        let data = fx.dir.path().join(format!("node{i}"));
        let node = fx.start_node(port, &data);
        fx.nodes.push(node);
    }
    for i in 0..3 {
        let w = Fixture::start_worker(&fx.meta, &fx.blobs, &fx.dir.path().join(format!("w{i}")));
        fx.workers.push(w);
    }
    Some(fx)
}

/// The fixture, for one test at a time; None when a server is not installed (skipped).
fn fixture() -> Option<MutexGuard<'static, Fixture>> {
    static FIXTURE: OnceLock<Option<Mutex<Fixture>>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| start().map(Mutex::new))
        .as_ref()
        // A test that failed holding it leaves it usable by the next.
        .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
}

/// The fixture's token (in the shared metadata store, so good on every node).
static TOKEN: OnceLock<String> = OnceLock::new();

fn http() -> reqwest::blocking::Client {
    http_with(TOKEN.get().map(String::as_str))
}

fn tus_create(base: &str, name: &str, len: usize) -> String {
    use base64::Engine;
    let meta = base64::engine::general_purpose::STANDARD.encode(name);
    let r = http()
        .post(format!("{base}/api/uploads/"))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", len)
        .header("Upload-Metadata", format!("filename {meta}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    r.headers()["location"].to_str().unwrap().to_owned()
}

fn tus_head(base: &str, loc: &str) -> reqwest::blocking::Response {
    http()
        .head(format!("{base}{loc}"))
        .header("Tus-Resumable", "1.0.0")
        .send()
        .unwrap()
}

fn tus_offset(base: &str, loc: &str) -> u64 {
    let h = tus_head(base, loc);
    assert_eq!(h.status(), 200);
    h.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn tus_patch(base: &str, loc: &str, offset: u64, body: Vec<u8>) -> reqwest::blocking::Response {
    http()
        .patch(format!("{base}{loc}"))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", offset)
        .header("Content-Type", "application/offset+octet-stream")
        .body(body)
        .send()
        .unwrap()
}

fn content(base: &str, id: &str) -> Vec<u8> {
    let r = http()
        .get(format!("{base}/api/files/{id}/content"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().unwrap().to_vec()
}

/// A subscriber of `/api/events` on `base`: its events as (kind, data), on a channel.
fn subscribe(base: &str) -> Events {
    let r = http().get(format!("{base}/api/events")).send().unwrap();
    assert_eq!(r.status(), 200);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kind = String::new();
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            if let Some(k) = line.strip_prefix("event: ") {
                kind = k.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                let v = serde_json::from_str(d).unwrap_or(serde_json::Value::Null);
                if tx.send((std::mem::take(&mut kind), v)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

type Events = mpsc::Receiver<(String, serde_json::Value)>;

/// Whether an event of `kind` about file `id` arrives within `wait`.
fn event_within(rx: &Events, kind: &str, id: &str, wait: Duration) -> bool {
    let until = Instant::now() + wait;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((k, v)) if k == kind && v["id"] == id => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

/// Waits for an event of `kind` about file `id`.
fn expect_event(rx: &Events, kind: &str, id: &str) {
    assert!(
        event_within(rx, kind, id, Duration::from_secs(60)),
        "no {kind} event for {id}"
    );
}

fn file_json(base: &str, id: &str) -> (u16, serde_json::Value) {
    let r = http().get(format!("{base}/api/files/{id}")).send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(serde_json::Value::Null))
}

fn put(base: &str, name: &str, body: Vec<u8>) -> serde_json::Value {
    let r = http()
        .put(format!("{base}/api/files"))
        .query(&[("name", name)])
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().unwrap()
}

#[test]
fn a_tus_upload_begun_on_one_node_resumes_on_the_other() {
    let Some(fx) = fixture() else { return };
    let (a, b) = (fx.nodes[0].url(), fx.nodes[1].url());
    let body = bytes(3_000_000, 11);
    let loc = tus_create(&a, "moved.bin", body.len());
    let r = tus_patch(&a, &loc, 0, body[..1_200_000].to_vec());
    assert_eq!(r.status(), 204);
    // Node B knows the upload and where it stands: its state is in the stores, not in A.
    assert_eq!(tus_offset(&b, &loc), 1_200_000);
    // A PATCH at a stale offset is refused on B as it would be on A.
    assert_eq!(tus_patch(&b, &loc, 0, b"x".to_vec()).status(), 409);
    let r = tus_patch(&b, &loc, 1_200_000, body[1_200_000..].to_vec());
    assert_eq!(r.status(), 204);
    let id = r.headers()["disgrafs-file-id"].to_str().unwrap().to_owned();
    // Byte-identical through every node and the load balancer.
    for base in [&a, &b, &fx.lb] {
        assert_eq!(b3(&content(base, &id)), b3(&body));
    }
    assert_eq!(
        tus_head(&a, &loc).headers()["disgrafs-file-id"],
        id.as_str()
    );
}

#[test]
fn events_and_deletions_of_one_node_reach_the_other() {
    let Some(fx) = fixture() else { return };
    let (a, b) = (fx.nodes[0].url(), fx.nodes[1].url());
    let events = subscribe(&b);
    let rec = put(
        &a,
        "event.md",
        b"# Events\n\nFrom node A to node B.\n".to_vec(),
    );
    let id = rec["id"].as_str().unwrap().to_owned();
    expect_event(&events, "file.created", &id);
    // Tagged by one of the workers, announced on B too.
    expect_event(&events, "file.tagged", &id);
    assert_eq!(file_json(&b, &id).0, 200);
    let r = http().delete(format!("{a}/api/files/{id}")).send().unwrap();
    assert_eq!(r.status(), 204);
    // Seen at once on B: no node keeps a copy of what it served before.
    assert_eq!(file_json(&b, &id).0, 404);
    assert_eq!(file_json(&fx.lb, &id).0, 404);
    expect_event(&events, "file.deleted", &id);
}

/// Text that keeps a worker busy for a while (the tagger reads at most 4 MiB of it).
fn long_text() -> Vec<u8> {
    let words = [
        "graph",
        "tagging",
        "distributed",
        "storage",
        "worker",
        "lease",
        "postgres",
        "content",
        "hash",
        "node",
        "upload",
        "resume",
        "balancer",
        "event",
        "subscriber",
        "query",
    ];
    let mut out = String::new();
    let mut x = 12345u64;
    while out.len() < 4_000_000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.push_str(words[(x >> 33) as usize % words.len()]);
        out.push(if (x >> 20).is_multiple_of(13) {
            '.'
        } else {
            ' '
        });
    }
    out.into_bytes()
}

#[test]
fn a_worker_killed_mid_job_loses_it_and_the_job_finishes_once_elsewhere() {
    let Some(mut fx) = fixture() else { return };
    // Workers 1 and 2 are frozen, so worker 0 claims the job.
    for w in &fx.workers[1..] {
        // SAFETY: a signal to our own child, by its PID.
        unsafe { libc::kill(w.id() as libc::pid_t, libc::SIGSTOP) };
    }
    let events = subscribe(&fx.nodes[1].url());
    let body = long_text();
    let hash = b3(&body);
    let id = put(&fx.lb, "long.txt", body)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let until = Instant::now() + Duration::from_secs(60);
    let state = |fx: &Fixture| fx.psql(&format!("SELECT state FROM jobs WHERE hash = '{hash}'"));
    while state(&fx) != "running" {
        assert!(
            Instant::now() < until,
            "worker 0 did not claim the job: {}",
            state(&fx)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    fx.workers[0].kill().ok();
    fx.workers[0].wait().ok();
    assert_eq!(
        state(&fx),
        "running",
        "the job finished before its worker was killed: make the text longer"
    );
    for w in &fx.workers[1..] {
        // SAFETY: as above.
        unsafe { libc::kill(w.id() as libc::pid_t, libc::SIGCONT) };
    }
    // Once the dead worker's lease runs out, another worker takes the job and finishes it.
    expect_event(&events, "file.tagged", &id);
    let (_, f) = file_json(&fx.lb, &id);
    assert_eq!(f["tagging"], "done", "{f}");
    assert_eq!(state(&fx), "", "the job is gone once done");
    // Exactly once: no second result is announced (the dead worker can never complete).
    std::thread::sleep(Duration::from_secs(1));
    let again: Vec<_> = events
        .try_iter()
        .filter(|(k, v)| k == "file.tagged" && v["id"] == id.as_str())
        .collect();
    assert!(again.is_empty(), "tagged twice: {again:?}");
    let data = fx.dir.path().join("w0");
    fx.workers[0] = Fixture::start_worker(&fx.meta, &fx.blobs, &data);
}

#[test]
fn a_node_killed_mid_upload_loses_nothing_and_the_upload_resumes_on_the_other() {
    let Some(mut fx) = fixture() else { return };
    let a = fx.nodes[0].url();
    let body = bytes(4_000_000, 23);
    let loc = tus_create(&a, "interrupted.bin", body.len());
    assert_eq!(
        tus_patch(&a, &loc, 0, body[..1_000_000].to_vec()).status(),
        204
    );
    // A second PATCH that node A is receiving when it is killed.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", fx.nodes[0].port)).unwrap();
    write!(
        s,
        "PATCH {loc} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Tus-Resumable: 1.0.0\r\nUpload-Offset: 1000000\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: 3000000\r\n\r\n",
        TOKEN.get().unwrap()
    )
    .unwrap();
    s.write_all(&body[1_000_000..2_000_000]).unwrap();
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    fx.kill_node(0);
    drop(s);
    // Through the load balancer (node B now): the first PATCH's bytes are all there, and the
    // offset claims nothing of the one cut off.
    let lb = fx.lb.clone();
    let offset = tus_offset(&lb, &loc);
    assert_eq!(offset, 1_000_000);
    // The dead node's lease on the upload runs out; until then B answers 423 and we retry.
    let until = Instant::now() + Duration::from_secs(60);
    let r = loop {
        let r = tus_patch(&lb, &loc, offset, body[offset as usize..].to_vec());
        if r.status() != 423 {
            break r;
        }
        assert!(Instant::now() < until, "the upload stayed locked");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(r.status(), 204);
    let id = r.headers()["disgrafs-file-id"].to_str().unwrap().to_owned();
    assert_eq!(b3(&content(&lb, &id)), b3(&body));
    fx.restart_node(0);
    assert_eq!(b3(&content(&fx.nodes[0].url(), &id)), b3(&body));
}

#[test]
fn a_postgres_restart_gives_503s_then_recovers_without_a_restart_of_disgrafs() {
    let Some(fx) = fixture() else { return };
    let (a, b) = (fx.nodes[0].url(), fx.nodes[1].url());
    let before = put(&fx.lb, "before.txt", b"written before the restart".to_vec());
    let id = before["id"].as_str().unwrap().to_owned();
    fx.cluster.stop_server();
    // While it is down: a clear 503 with the JSON error body, on every node.
    for base in [&a, &b] {
        let r = http().get(format!("{base}/api/files/{id}")).send().unwrap();
        assert_eq!(r.status(), 503, "{base}");
        let v: serde_json::Value = r.json().unwrap();
        assert_eq!(v["code"], "store_unavailable", "{v}");
        assert!(v["error"].as_str().unwrap().contains("unavailable"), "{v}");
    }
    fx.cluster.start_server();
    // Back, with no restart of any node: reads, writes and events work again.
    let until = Instant::now() + Duration::from_secs(30);
    while file_json(&a, &id).0 != 200 {
        assert!(Instant::now() < until, "node A did not recover");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(content(&b, &id), b"written before the restart");
    // Node B's listener connects again on its own (within a second or so): an event of A
    // reaches B's subscribers again.
    let events = subscribe(&b);
    let heard = (0..20).any(|i| {
        let rec = put(
            &a,
            &format!("after-{i}.md"),
            format!("# After {i}\n").into_bytes(),
        );
        event_within(
            &events,
            "file.created",
            rec["id"].as_str().unwrap(),
            Duration::from_secs(2),
        )
    });
    assert!(heard, "events did not come back after the restart");
    let r = http().get(format!("{}/api/files", fx.lb)).send().unwrap();
    assert_eq!(r.status(), 200);
    let mut text = String::new();
    r.take(1 << 20).read_to_string(&mut text).unwrap();
    assert!(text.contains("after-0.md"), "{text}");
}
