//! The AF_XDP fast path against real clients: a veth pair between two namespaces, the normal
//! server (kernel TCP) and the fast path (XDP + AF_XDP + smoltcp) on the same address and data
//! directory in namespace b, curl and raw sockets in namespace a. Needs root (skips with the
//! reason otherwise; fails instead under DISGRAFS_REQUIRE_PRIVILEGED=1).
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

use std::{
    collections::BTreeSet,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use disgrafs_accel::{
    afxdp::{self, UserCounter},
    harness::{
        self, VethNet, VethOptions,
        packet::{FrameSpec, RawSender, frame},
        which,
    },
};
use disgrafs_fastpath::{FastPath, FastPathConfig};

const NORMAL_PORT: u16 = 7878;
const FAST_PORT: u16 = 8080;

/// Tests share nothing but the machine; one at a time keeps their timing honest on 2 CPUs.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn can_run(name: &str) -> bool {
    if !harness::privileged_or_skip(name) {
        return false;
    }
    for tool in ["curl", "ethtool"] {
        if which(tool).is_none() {
            let reason = format!("{tool} is not installed (scripts/deps.d/20-accel.sh)");
            if std::env::var(harness::REQUIRE_ENV).as_deref() == Ok("1") {
                panic!("{name} cannot run ({reason})");
            }
            eprintln!("skipping {name}: {reason}");
            return false;
        }
    }
    true
}

/// Both servers on one veth pair, and files uploaded through the normal one.
struct Host {
    // Drop order: the fast path, the normal server, then the namespaces.
    fast: Option<FastPath>,
    normal: Option<(tokio::runtime::Runtime, tokio::sync::oneshot::Sender<()>)>,
    net: VethNet,
    _dir: tempfile::TempDir,
    data: PathBuf,
    /// An admin API token of the store, which every request sends.
    token: String,
}

impl Drop for Host {
    fn drop(&mut self) {
        drop(self.fast.take());
        if let Some((rt, stop)) = self.normal.take() {
            stop.send(()).ok();
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

fn url(port: u16, path: &str) -> String {
    format!("http://{}:{port}{path}", VethNet::ADDR_B)
}

impl Host {
    fn new(max_body: u64) -> Host {
        let net = VethNet::new(VethOptions { single_queue: true }).unwrap();
        // veth leaves TCP checksums to "hardware" that never computes them; AF_XDP sees frames
        // as sent, so the peer must checksum in software (a real NIC's frames are complete).
        net.a
            .command("ethtool")
            .args(["-K", VethNet::IF_A, "tx", "off"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = net
            .b
            .run(|| {
                std::net::TcpListener::bind(SocketAddr::from((VethNet::ADDR_B, NORMAL_PORT)))
                    .map_err(|e| disgrafs_accel::AccelError::Harness(e.to_string()))
            })
            .unwrap();
        listener.set_nonblocking(true).unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (token_tx, token_rx) = std::sync::mpsc::channel();
        let config = disgrafs_server::Config {
            data_dir: data.clone(),
            workers: 0,
            ..Default::default()
        };
        rt.spawn(async move {
            let state = disgrafs_server::AppState::open(config).await.unwrap();
            let accounts = state.store.accounts();
            accounts
                .add_user("test", None, disgrafs_core::auth::Scope::Admin)
                .await
                .unwrap();
            let issued = accounts
                .issue(
                    "test",
                    disgrafs_store::CredentialKind::Api,
                    disgrafs_core::auth::Scope::Admin,
                    None,
                )
                .await
                .unwrap();
            token_tx.send(issued.secret).unwrap();
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            disgrafs_server::serve(state, l, None, axum::Router::new(), async move {
                stop_rx.await.ok();
            })
            .await
            .unwrap();
        });
        let mut host = Host {
            fast: None,
            normal: Some((rt, stop_tx)),
            net,
            _dir: dir,
            data,
            token: token_rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the normal server made a token"),
        };
        host.wait_normal();
        let mut cfg = FastPathConfig::new(
            VethNet::IF_B,
            Some(host.net.b.name()),
            FAST_PORT,
            host.data.clone(),
        );
        cfg.max_body = max_body;
        cfg.ack_timeout = Duration::from_secs(3);
        cfg.idle_timeout = Duration::from_secs(10);
        let fast = FastPath::start(cfg.clone()).unwrap();
        eprintln!("{}", fast.started.describe(&cfg));
        host.fast = Some(fast);
        host
    }

    fn wait_normal(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let out = self.curl(&[
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &url(NORMAL_PORT, "/api/health"),
            ]);
            if out.stdout == b"200" {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the normal server did not come up");
    }

    fn fast(&self) -> &FastPath {
        self.fast.as_ref().unwrap()
    }

    fn curl_cmd(&self, args: &[&str]) -> Command {
        let mut c = self.net.a.command("curl");
        let auth = format!("Authorization: Bearer {}", self.token);
        c.args(["--max-time", "60", "-H", &auth]).args(args);
        c
    }

    fn curl(&self, args: &[&str]) -> Output {
        self.curl_cmd(args).output().unwrap()
    }

    /// Uploads `bytes` as `name` through the normal server; returns the record's id.
    fn upload(&self, name: &str, bytes: &[u8]) -> String {
        let f = self.data.parent().unwrap().join(name);
        std::fs::write(&f, bytes).unwrap();
        let out = self.curl(&[
            "-s",
            "-f",
            "-X",
            "PUT",
            "--data-binary",
            &format!("@{}", f.display()),
            &url(NORMAL_PORT, &format!("/api/files?name={name}")),
        ]);
        assert!(out.status.success(), "upload: {out:?}");
        let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        rec["id"].as_str().unwrap().to_string()
    }

    /// Status, headers (without `date`) and body of one request to `port`.
    fn fetch(&self, port: u16, path: &str, extra: &[&str]) -> (String, BTreeSet<String>, Vec<u8>) {
        let tmp = self.data.parent().unwrap();
        let (h, b) = (tmp.join(format!("h{port}")), tmp.join(format!("b{port}")));
        std::fs::remove_file(&b).ok();
        let mut args = vec!["-s", "-D", h.to_str().unwrap(), "-o", b.to_str().unwrap()];
        args.extend_from_slice(extra);
        let u = url(port, path);
        args.push(&u);
        let out = self.curl(&args);
        assert!(out.status.success(), "curl {path} on {port}: {out:?}");
        let head = std::fs::read_to_string(&h).unwrap();
        let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
        let status = lines.next().unwrap().to_string();
        let headers = lines
            .filter(|l| !l.to_ascii_lowercase().starts_with("date:"))
            .map(|l| l.to_ascii_lowercase())
            .collect();
        (status, headers, std::fs::read(&b).unwrap_or_default())
    }

    fn wait_idle(&self) -> u64 {
        // The counter is published every 250 ms; a vanished client is given up after the
        // ack timeout (3 s) plus smoltcp's retransmission backoff.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let active = self.fast().counters().get(UserCounter::TcpActive);
            if active == 0 || Instant::now() > deadline {
                return active;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn content(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

#[test]
fn identical_responses_to_the_normal_server() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !can_run("identical_responses_to_the_normal_server") {
        return;
    }
    let host = Host::new(1 << 20);
    let small = host.upload("small.txt", b"hello from the fast path\n");
    let big = host.upload("data.bin", &content(300_000, 7));
    let empty = host.upload("empty.txt", b"");
    let too_big = host.upload("huge.bin", &content(1_500_000, 3));
    let etag = format!("If-None-Match: \"{}\"", {
        let out = host.curl(&["-s", &url(NORMAL_PORT, &format!("/api/files/{big}"))]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["hash"].as_str().unwrap().to_string()
    });
    let cases: Vec<(String, Vec<&str>)> = vec![
        (format!("/api/files/{small}"), vec![]),
        (format!("/api/files/{small}/content"), vec![]),
        (format!("/api/files/{big}/content"), vec![]),
        (format!("/api/files/{big}/content?inline=1"), vec![]),
        (format!("/api/files/{big}/content"), vec!["-I"]),
        (
            format!("/api/files/{big}/content"),
            vec!["-H", "Range: bytes=100-199"],
        ),
        (
            format!("/api/files/{big}/content"),
            vec!["-H", "Range: bytes=-10"],
        ),
        (
            format!("/api/files/{big}/content"),
            vec!["-H", "Range: bytes=999999-"],
        ),
        (format!("/api/files/{big}/content"), vec!["-H", &etag]),
        (format!("/api/files/{empty}/content"), vec![]),
        ("/api/files/0123456789abcdef/content".to_string(), vec![]),
        ("/api/files/nope".to_string(), vec![]),
    ];
    for (path, extra) in &cases {
        let normal = host.fetch(NORMAL_PORT, path, extra);
        let fast = host.fetch(FAST_PORT, path, extra);
        assert_eq!(normal, fast, "{path} {extra:?}");
    }
    // Above the size limit: refused, for the normal server to answer.
    let (status, _, body) = host.fetch(FAST_PORT, &format!("/api/files/{too_big}/content"), &[]);
    assert!(status.contains("503"), "{status}");
    assert!(String::from_utf8_lossy(&body).contains("fast_path_limit"));
    // What the fast path does not serve is a JSON 404 or axum's 405, never a hang.
    let (status, _, _) = host.fetch(FAST_PORT, "/api/health", &[]);
    assert!(status.contains("404"), "{status}");
    let (status, _, _) = host.fetch(FAST_PORT, &format!("/api/files/{small}"), &["-X", "DELETE"]);
    assert!(status.contains("405"), "{status}");
    let c = host.fast().counters();
    assert!(c.get(UserCounter::HttpRequests) >= cases.len() as u64);
    // Frame counts are published with the heartbeat (every 250 ms): wait for one published
    // after the last request.
    let after = afxdp::unix_ms();
    let until = Instant::now() + Duration::from_secs(10);
    while c.get(UserCounter::HeartbeatMs) <= after && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        c.get(UserCounter::HeartbeatMs) > after,
        "no heartbeat published"
    );
    assert!(c.get(UserCounter::RxFrames) > 0 && c.get(UserCounter::TxFrames) > 0);
    // The normal server's /metrics shows the steering and the fast path's own counters, read
    // through their pins (the fast path publishes every 250 ms).
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let out = host.curl(&["-s", &url(NORMAL_PORT, "/metrics")]);
        let m = String::from_utf8_lossy(&out.stdout).into_owned();
        let sum = |prefix: &str| -> f64 {
            m.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        let requests = sum("disgrafs_accel_afxdp_fast_path_http_requests_total{iface=\"dgf-b\"");
        let steered = sum("disgrafs_accel_afxdp_frames_total{iface=\"dgf-b\"");
        if requests >= cases.len() as f64 && steered > 0.0 {
            assert!(
                m.contains("disgrafs_accel_attached{accelerator=\"afxdp\",iface=\"dgf-b\""),
                "{m}"
            );
            break;
        }
        assert!(Instant::now() < until, "{m}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sequential_concurrent_and_lossy() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !can_run("sequential_concurrent_and_lossy") {
        return;
    }
    let host = Host::new(1 << 20);
    let body = content(4096, 1);
    let id = host.upload("four.bin", &body);
    let path = format!("/api/files/{id}/content");
    let tmp = host.data.parent().unwrap().to_path_buf();

    // 1,000 sequential requests on one keep-alive connection (curl reuses it).
    let conf = tmp.join("seq.curl");
    let mut text = String::new();
    for _ in 0..1000 {
        text.push_str(&format!(
            "url = \"{}\"\noutput = \"/dev/null\"\n",
            url(FAST_PORT, &path)
        ));
    }
    std::fs::write(&conf, text).unwrap();
    let out = host.curl(&[
        "-s",
        "-w",
        "%{http_code} %{size_download}\n",
        "-K",
        conf.to_str().unwrap(),
    ]);
    let lines = String::from_utf8_lossy(&out.stdout).to_string();
    let ok = lines.lines().filter(|l| *l == "200 4096").count();
    assert_eq!(ok, 1000, "{}", &lines[..lines.len().min(500)]);

    // 100 sequential requests, each on a new connection.
    for i in 0..100 {
        let out = host.curl(&[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url(FAST_PORT, &path),
        ]);
        assert_eq!(out.stdout, b"200", "connection {i}");
    }

    // 100 concurrent connections.
    let conf = tmp.join("par.curl");
    let mut text = String::new();
    for _ in 0..100 {
        text.push_str(&format!(
            "url = \"{}\"\noutput = \"/dev/null\"\n",
            url(FAST_PORT, &path)
        ));
    }
    std::fs::write(&conf, text).unwrap();
    let out = host.curl(&[
        "-s",
        "--parallel",
        "--parallel-immediate",
        "--parallel-max",
        "100",
        "-w",
        "%{http_code} %{size_download}\n",
        "-K",
        conf.to_str().unwrap(),
    ]);
    let lines = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        lines.lines().filter(|l| *l == "200 4096").count(),
        100,
        "{lines}"
    );

    // 1 % loss each way on the client's side: every response still complete. (No netem in this
    // kernel, so no delay or reordering: the loss comes from a tc program, which counts it.)
    let big = content(200_000, 9);
    let big_id = host.upload("lossy.bin", &big);
    let mut loss = harness::Loss::attach(&host.net.a, VethNet::IF_A, 10_000).unwrap();
    let want = blake3::hash(&big);
    for i in 0..30 {
        let (status, _, got) = host.fetch(FAST_PORT, &format!("/api/files/{big_id}/content"), &[]);
        assert!(status.contains("200"), "transfer {i}: {status}");
        assert_eq!(blake3::hash(&got), want, "transfer {i}");
    }
    assert!(loss.dropped().unwrap() > 0, "no packet was lost");
    drop(loss);
    assert_eq!(host.wait_idle(), 0, "connections left open");
}

#[test]
fn vanished_clients_and_malformed_input() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !can_run("vanished_clients_and_malformed_input") {
        return;
    }
    let host = Host::new(4 << 20);
    let small = host.upload("s.txt", b"still here\n");
    let big = host.upload("big.bin", &content(3_000_000, 5));
    let addr = SocketAddr::from((VethNet::ADDR_B, FAST_PORT));
    let connect = || {
        host.net
            .a
            .run(|| {
                let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                    .map_err(|e| disgrafs_accel::AccelError::Harness(e.to_string()))?;
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                Ok(s)
            })
            .unwrap()
    };
    let get = |s: &mut TcpStream, path: &str| -> String {
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {}\r\n\r\n",
            host.token
        )
        .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    // A keep-alive connection that must survive everything below.
    let mut keeper = connect();
    assert!(get(&mut keeper, &format!("/api/files/{small}/content")).starts_with("HTTP/1.1 200"));

    // A 64 KiB request line: 400, connection closed.
    let mut s = connect();
    let line = format!("GET /{} HTTP/1.1\r\n\r\n", "x".repeat(64 * 1024));
    s.write_all(line.as_bytes()).ok();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok();
    assert!(
        resp.starts_with(b"HTTP/1.1 400 Bad Request"),
        "{:?}",
        String::from_utf8_lossy(&resp[..resp.len().min(200)])
    );

    // Garbage, and a truncated head whose client goes away.
    let mut s = connect();
    s.write_all(b"\x16\x03\x01\x02\x00garbage\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok();
    assert!(
        resp.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&resp)
    );
    let mut s = connect();
    s.write_all(b"GET /api/files/x HTTP/1.1\r\nHost:").unwrap();
    drop(s);

    // Frames with bad checksums to the port: dropped by smoltcp, answered by nobody.
    let rx_before = host.fast().counters().get(UserCounter::RxFrames);
    let src_mac = VethNet::mac(&host.net.a, VethNet::IF_A).unwrap();
    let dst_mac = VethNet::mac(&host.net.b, VethNet::IF_B).unwrap();
    host.net
        .a
        .run(|| {
            let tx = RawSender::new(VethNet::IF_A)?;
            for i in 0..100u16 {
                tx.send(&frame(&FrameSpec {
                    src_mac,
                    dst_mac,
                    sport: 50000 + i,
                    dport: FAST_PORT,
                    payload: b"GET / HTTP/1.1\r\n\r\n",
                    ..Default::default()
                }))?;
            }
            Ok(())
        })
        .unwrap();

    // A client that vanishes mid-transfer: its frames are dropped from then on.
    let mut child: Child = host
        .curl_cmd(&[
            "-s",
            "-o",
            "/dev/null",
            "--limit-rate",
            "100k",
            &url(FAST_PORT, &format!("/api/files/{big}/content")),
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let blackhole = harness::Loss::attach(&host.net.a, VethNet::IF_A, 1_000_000).unwrap();
    child.kill().ok();
    child.wait().ok();
    std::thread::sleep(Duration::from_millis(500));
    drop(blackhole);
    // The keeper idled through the loss; it is reset by the idle timeout at the latest, so
    // only then may every connection be gone.
    drop(keeper);
    assert_eq!(
        host.wait_idle(),
        0,
        "the vanished client's connection was not freed"
    );
    let c = host.fast().counters();
    // (Freed by smoltcp's own retransmission timeout, which `tcp_timed_out` does not count.)
    assert!(c.get(UserCounter::RxFrames) >= rx_before + 100);
    // And the fast path still serves.
    let mut s = connect();
    assert!(get(&mut s, &format!("/api/files/{small}/content")).starts_with("HTTP/1.1 200"));
}

/// One request on a fresh connection asking `Connection: close` (so the fast path closes
/// first): the whole response, or what went wrong.
fn get_and_close(addr: SocketAddr, path: &str, token: &str) -> Result<Vec<u8>, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)
        .map_err(|e| format!("read after {} bytes: {e}", resp.len()))?;
    Ok(resp)
}

#[test]
fn connection_churn_gets_every_response_complete() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !can_run("connection_churn_gets_every_response_complete") {
        return;
    }
    let mut host = Host::new(1 << 20);
    let body = content(4096, 4);
    let id = host.upload("churn.bin", &body);
    let path = format!("/api/files/{id}/content");
    let addr = SocketAddr::from((VethNet::ADDR_B, FAST_PORT));
    // Many more connections than the pool's 256 sockets, each closed by the fast path first,
    // in rounds, from 16 clients at once; bounded in count and, per connection, in time.
    const CLIENTS: usize = 16;
    const PER_CLIENT: usize = 400;
    const ROUNDS: usize = 2;
    let mut failures = Vec::new();
    let mut complete = 0;
    for round in 0..ROUNDS {
        let results: Vec<Vec<Result<Vec<u8>, String>>> = host
            .net
            .a
            .run(|| {
                Ok(std::thread::scope(|sc| {
                    let clients: Vec<_> = (0..CLIENTS)
                        .map(|_| {
                            sc.spawn(|| {
                                (0..PER_CLIENT)
                                    .map(|_| get_and_close(addr, &path, &host.token))
                                    .collect::<Vec<_>>()
                            })
                        })
                        .collect();
                    clients.into_iter().map(|c| c.join().unwrap()).collect()
                }))
            })
            .unwrap();
        for r in results.into_iter().flatten() {
            match r {
                Ok(resp) => {
                    let split = resp.windows(4).position(|w| w == b"\r\n\r\n");
                    match split {
                        Some(at)
                            if resp.starts_with(b"HTTP/1.1 200") && resp[at + 4..] == body[..] =>
                        {
                            complete += 1
                        }
                        _ => failures.push(format!(
                            "round {round}: incomplete response of {} bytes: {:?}",
                            resp.len(),
                            String::from_utf8_lossy(&resp[..resp.len().min(120)])
                        )),
                    }
                }
                Err(e) => failures.push(format!("round {round}: {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests failed, first: {:?}",
        failures.len(),
        CLIENTS * PER_CLIENT * ROUNDS,
        &failures[..failures.len().min(5)]
    );
    assert_eq!(complete, CLIENTS * PER_CLIENT * ROUNDS);
    let c = host.fast().counters();
    assert!(c.get(UserCounter::TcpAccepted) >= complete as u64);
    // The fast path's thread is still the one serving, and its heartbeat is fresh.
    let mut fast = host.fast.take().unwrap();
    fast.check().unwrap();
    fast.stop().unwrap();
}

/// A bare TCP SYN from `src:sport` to `dst:dport` with a valid checksum (for a raw IP socket).
fn syn(src: std::net::Ipv4Addr, dst: std::net::Ipv4Addr, sport: u16, dport: u16) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = 0x02;
    h[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let mut sum: u32 = [&src.octets()[..], &dst.octets()[..], &[0, 6, 0, 20], &h[..]]
        .concat()
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    h[16..18].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    h
}

/// A handshake that fails in SYN-RECEIVED (the client's kernel resets the SYN-ACK to a SYN it
/// never sent) must not leave its socket marked half-open: the next client on that socket, more
/// than the handshake timeout later, is served instead of reset.
#[test]
fn a_failed_handshake_does_not_reset_a_later_client() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !can_run("a_failed_handshake_does_not_reset_a_later_client") {
        return;
    }
    let host = Host::new(1 << 20);
    let id = host.upload("h.txt", b"after a failed handshake\n");
    host.net
        .a
        .run(|| {
            // SAFETY: a raw IPv4 socket for TCP; the kernel adds the IP header.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP) };
            assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
            let seg = syn(VethNet::ADDR_A, VethNet::ADDR_B, 45_678, FAST_PORT);
            let to = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(VethNet::ADDR_B).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: seg and to are valid for the call; fd is ours and closed after.
            let n = unsafe {
                let n = libc::sendto(
                    fd,
                    seg.as_ptr().cast(),
                    seg.len(),
                    0,
                    (&to as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                );
                libc::close(fd);
                n
            };
            assert_eq!(n, 20, "sendto: {}", std::io::Error::last_os_error());
            Ok(())
        })
        .unwrap();
    // Past the handshake timeout (5 s): the next connections take the same first socket.
    std::thread::sleep(Duration::from_secs(7));
    for i in 0..3 {
        let (status, _, body) = host.fetch(FAST_PORT, &format!("/api/files/{id}/content"), &[]);
        assert!(status.contains("200"), "request {i}: {status}");
        assert_eq!(body, b"after a failed handshake\n");
    }
}
