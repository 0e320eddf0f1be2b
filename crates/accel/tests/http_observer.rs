//! The HTTP observer end to end on a veth pair: a server in namespace b, the observer on b's
//! interface, curl and a Rust client in namespace a sending a mix of requests, plus traffic that
//! must be ignored (non-HTTP TCP, UDP, truncated and garbage frames) and a request line split
//! across two segments. Needs root (skips with the reason otherwise; fails instead under
//! DISGRAFS_REQUIRE_PRIVILEGED=1).
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use disgrafs_accel::{
    AccelError,
    harness::{
        self, VethNet, VethOptions,
        packet::{FrameSpec, RawSender, frame},
    },
    http::{HttpObserver, Observed, ObserverConfig},
};

/// A minimal HTTP/1.1 server: reads one request head (and its declared body), answers 200 and
/// closes. Runs until `stop` is set; every read is bounded by a timeout.
fn serve(listener: TcpListener, stop: Arc<AtomicBool>) {
    listener.set_nonblocking(true).unwrap();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while let Ok(n) = s.read(&mut chunk) {
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(end) = buf
                            .windows(4)
                            .position(|w| w == b"\r\n\r\n")
                            .map(|p| p + 4)
                            .or_else(|| buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
                        {
                            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                            let len: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            if buf.len() >= end + len {
                                break;
                            }
                        }
                    }
                    s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .ok();
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Sends raw bytes over a fresh TCP connection from namespace a, in the given writes (each its
/// own segment: Nagle off and a pause between writes), then reads the answer if any.
fn tcp_send(net: &VethNet, to: SocketAddr, writes: &[&[u8]]) {
    let writes: Vec<Vec<u8>> = writes.iter().map(|w| w.to_vec()).collect();
    net.a
        .run(move || {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))
                .map_err(|e| AccelError::Harness(format!("connect {to}: {e}")))?;
            s.set_nodelay(true).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            for w in &writes {
                s.write_all(w).unwrap();
                std::thread::sleep(Duration::from_millis(50));
            }
            let mut sink = Vec::new();
            s.read_to_end(&mut sink).ok();
            Ok(())
        })
        .unwrap();
}

fn curl(net: &VethNet, args: &[&str]) {
    let out = net
        .a
        .command("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", "5"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sees_every_request_with_method_path_and_host_and_ignores_the_rest() {
    if !harness::privileged_or_skip(
        "sees_every_request_with_method_path_and_host_and_ignores_the_rest",
    ) {
        return;
    }
    if harness::which("curl").is_none() {
        panic!("curl is not installed (scripts/deps.d/20-accel.sh installs it)");
    }
    let net = VethNet::new(VethOptions::default()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (l4, l6, junk) = net
        .b
        .run(|| {
            let bind = |a: &str| {
                TcpListener::bind(a).map_err(|e| AccelError::Harness(format!("bind {a}: {e}")))
            };
            Ok((
                bind("198.18.0.2:8080")?,
                bind("[2001:2::2]:8080")?,
                bind("198.18.0.2:8081")?,
            ))
        })
        .unwrap();
    let servers: Vec<_> = [l4, l6, junk]
        .into_iter()
        .map(|l| {
            let stop = stop.clone();
            std::thread::spawn(move || serve(l, stop))
        })
        .collect();

    let seen: Arc<Mutex<Vec<Observed>>> = Arc::default();
    let obs = {
        let seen = seen.clone();
        HttpObserver::start(
            &ObserverConfig::new(VethNet::IF_B, Some(net.b.name())),
            Some(Box::new(move |ev: &Observed| {
                seen.lock().unwrap().push(ev.clone())
            })),
        )
        .unwrap()
    };

    // curl: the common methods, a query string, a body, IPv6.
    let base = "http://198.18.0.2:8080";
    curl(
        &net,
        &[
            "-H",
            "Host: files.test",
            &format!("{base}/api/files?limit=5"),
        ],
    );
    curl(
        &net,
        &[
            "-H",
            "Host: files.test",
            "-d",
            "name=a",
            &format!("{base}/api/files"),
        ],
    );
    curl(
        &net,
        &["-X", "PUT", "-d", "x", &format!("{base}/api/files/123")],
    );
    curl(&net, &["-X", "DELETE", &format!("{base}/api/files/123")]);
    curl(&net, &["-I", &format!("{base}/")]);
    curl(
        &net,
        &[
            "-X",
            "OPTIONS",
            "--request-target",
            "*",
            &format!("{base}/"),
        ],
    );
    curl(&net, &["-g", "http://[2001:2::2]:8080/v6/path"]);

    // The Rust client: an extension method, HTTP/1.0 without Host, a split request line.
    let b4: SocketAddr = "198.18.0.2:8080".parse().unwrap();
    tcp_send(
        &net,
        b4,
        &[b"PROPFIND /dav/ HTTP/1.1\r\nHost: dav.test\r\nDepth: 1\r\n\r\n"],
    );
    tcp_send(&net, b4, &[b"GET /old HTTP/1.0\r\n\r\n"]);
    tcp_send(
        &net,
        b4,
        &[b"GET /spl", b"it HTTP/1.1\r\nHost: split.test\r\n\r\n"],
    );

    // To be ignored: non-HTTP TCP, UDP carrying a request, truncated and garbage frames.
    let junk: SocketAddr = "198.18.0.2:8081".parse().unwrap();
    tcp_send(&net, junk, &[b"hello there\r\n\r\n"]);
    tcp_send(
        &net,
        junk,
        &[b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"],
    );
    tcp_send(&net, junk, &[b"get /lower HTTP/1.1\r\n\r\n"]);
    net.a
        .run(|| {
            let u = UdpSocket::bind("198.18.0.1:0").unwrap();
            for _ in 0..5 {
                u.send_to(
                    b"GET /udp HTTP/1.1\r\nHost: udp.test\r\n\r\n",
                    "198.18.0.2:8080",
                )
                .unwrap();
            }
            Ok(())
        })
        .unwrap();
    let dst_mac = VethNet::mac(&net.b, VethNet::IF_B).unwrap();
    let src_mac = VethNet::mac(&net.a, VethNet::IF_A).unwrap();
    net.a
        .run(|| {
            let tx = RawSender::new(VethNet::IF_A)?;
            let req = frame(&FrameSpec {
                src_mac,
                dst_mac,
                payload: b"GET /raw HTTP/1.1\r\n\r\n",
                ..Default::default()
            });
            tx.send(&req[..30])?; // cut inside the IPv4 header
            tx.send(&req[..44])?; // cut inside the TCP header
            let mut garbage = req.clone();
            for (i, b) in garbage.iter_mut().enumerate().skip(14) {
                *b = (i * 131 % 251) as u8;
            }
            tx.send(&garbage)?;
            Ok(())
        })
        .unwrap();

    // Everything above was sent synchronously; give the reader a moment to drain the socket.
    let deadline = Instant::now() + Duration::from_secs(3);
    while seen.lock().unwrap().len() < 11 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let counters = obs.filter_counters().unwrap();
    let agg = obs.stop();
    stop.store(true, Ordering::Relaxed);
    for s in servers {
        s.join().unwrap();
    }

    let seen = seen.lock().unwrap();
    let mut requests: Vec<(String, String, Option<String>, String)> = seen
        .iter()
        .filter_map(|e| match e {
            Observed::Request(r) => Some((
                r.method.clone(),
                r.target.clone(),
                r.host.clone(),
                r.version.clone(),
            )),
            Observed::SplitLine { .. } => None,
        })
        .collect();
    requests.sort();
    let s = |v: &str| v.to_string();
    let mut want = vec![
        (
            s("GET"),
            s("/api/files?limit=5"),
            Some(s("files.test")),
            s("HTTP/1.1"),
        ),
        (
            s("POST"),
            s("/api/files"),
            Some(s("files.test")),
            s("HTTP/1.1"),
        ),
        (
            s("PUT"),
            s("/api/files/123"),
            Some(s("198.18.0.2:8080")),
            s("HTTP/1.1"),
        ),
        (
            s("DELETE"),
            s("/api/files/123"),
            Some(s("198.18.0.2:8080")),
            s("HTTP/1.1"),
        ),
        (s("HEAD"), s("/"), Some(s("198.18.0.2:8080")), s("HTTP/1.1")),
        (
            s("OPTIONS"),
            s("*"),
            Some(s("198.18.0.2:8080")),
            s("HTTP/1.1"),
        ),
        (
            s("GET"),
            s("/v6/path"),
            Some(s("[2001:2::2]:8080")),
            s("HTTP/1.1"),
        ),
        (
            s("PROPFIND"),
            s("/dav/"),
            Some(s("dav.test")),
            s("HTTP/1.1"),
        ),
        (s("GET"), s("/old"), None, s("HTTP/1.0")),
    ];
    want.sort();
    assert_eq!(requests, want, "all events: {seen:#?}");
    let splits: Vec<&Observed> = seen
        .iter()
        .filter(|e| matches!(e, Observed::SplitLine { .. }))
        .collect();
    assert_eq!(splits.len(), 1, "{splits:?}");
    assert!(
        matches!(splits[0], Observed::SplitLine { method, target_prefix, .. } if method == "GET" && target_prefix == "/spl")
    );

    assert_eq!(agg.requests, 9);
    assert_eq!(agg.split_request_lines, 1);
    assert_eq!(
        agg.rejected, 0,
        "the kernel let nothing through that user space rejects"
    );
    let route = |m: &str, p: &str| {
        agg.routes
            .iter()
            .find(|r| r.method == m && r.path == p)
            .map(|r| r.requests)
    };
    assert_eq!(route("PUT", "/api/files/:id"), Some(1));
    assert_eq!(route("DELETE", "/api/files/:id"), Some(1));
    assert_eq!(route("GET", "/api/files"), Some(1));
    assert_eq!(counters.kept, 10, "{counters:?}");
    assert!(
        counters.malformed >= 2,
        "the truncated frames: {counters:?}"
    );
    assert!(counters.not_tcp >= 5, "the UDP datagrams: {counters:?}");
    assert!(
        counters.not_http >= 3,
        "non-HTTP TCP and the split's second half: {counters:?}"
    );
    eprintln!("filter counters: {counters:?}");
}
