//! `GET /metrics` on the real server: Prometheus text with request, store, system and tagging
//! figures after real traffic, and still an answer when /proc cannot be read.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;

fn scrape(s: &Server) -> String {
    let r = s.http().get(format!("{}/metrics", s.url)).send().unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    r.text().unwrap()
}

/// The value of the first sample whose line starts with `prefix`.
fn value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_after_traffic() {
    let s = Server::start();
    let f = s.put_ok(
        "notes.md",
        b"# Rust metrics\nPrometheus scrapes disgrafs metrics.\n",
    );
    let id = f["id"].as_str().unwrap();
    assert_eq!(s.content(id).len(), 52);
    for _ in 0..3 {
        s.get_json(&format!("/api/files/{id}"));
    }
    // A raw path must never become a label: 404s share one.
    let r = s
        .http()
        .get(format!("{}/no/such/{id}", s.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    s.wait_tagged();
    let m = scrape(&s);
    let got = value(
        &m,
        "disgrafs_http_requests_total{method=\"GET\",route=\"/api/files/{id}\",status=\"200\"}",
    );
    assert_eq!(got, Some(3.0), "{m}");
    assert!(!m.contains(id), "a file id leaked into a label:\n{m}");
    assert!(m.contains("route=\"unmatched\""), "{m}");
    assert_eq!(
        value(
            &m,
            "disgrafs_http_received_bytes_total{route=\"/api/files\"}"
        ),
        Some(52.0)
    );
    assert!(
        value(
            &m,
            "disgrafs_http_sent_bytes_total{route=\"/api/files/{id}/content\"}"
        ) >= Some(52.0)
    );
    assert!(
        m.contains(
            "disgrafs_http_request_duration_seconds_bucket{route=\"/api/files\",le=\"+Inf\"} 1"
        ),
        "{m}"
    );
    assert_eq!(value(&m, "disgrafs_store_files "), Some(1.0));
    assert_eq!(value(&m, "disgrafs_store_blobs "), Some(1.0));
    assert_eq!(value(&m, "disgrafs_store_bytes "), Some(52.0));
    assert!(value(&m, "disgrafs_store_tags ") > Some(0.0), "{m}");
    assert!(value(&m, "disgrafs_store_edges ") > Some(0.0), "{m}");
    assert_eq!(
        value(&m, "disgrafs_tagging_jobs{state=\"queued\"}"),
        Some(0.0)
    );
    assert!(
        m.contains("disgrafs_tagging_job_duration_seconds_count{kind=\"document\"} 1"),
        "{m}"
    );
    assert_eq!(value(&m, "disgrafs_tus_sessions "), Some(0.0));
    assert_eq!(value(&m, "disgrafs_sse_subscribers "), Some(0.0));
    // The scrape itself is in flight while it renders.
    assert_eq!(
        value(&m, "disgrafs_http_requests_in_flight{route=\"/metrics\"}"),
        Some(1.0)
    );
    for name in [
        "disgrafs_system_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}",
        "disgrafs_system_network_bytes_total{iface=\"lo\",dir=\"rx\"}",
        "disgrafs_system_tcp_in_segments_total ",
        "disgrafs_system_tcp_out_segments_total ",
        "disgrafs_system_tcp_retransmitted_segments_total ",
        "disgrafs_system_sockets_used ",
        "disgrafs_process_resident_bytes ",
        "disgrafs_process_open_fds ",
    ] {
        assert!(value(&m, name).is_some(), "{name} missing:\n{m}");
    }
    for section in [
        "store", "tus", "cpu", "net_dev", "disk", "tcp", "sockets", "process",
    ] {
        let line = format!("disgrafs_scrape_ok{{section=\"{section}\"}} 1");
        assert!(m.contains(&line), "{line} missing:\n{m}");
    }
}

#[test]
fn metrics_answer_when_proc_is_unreadable() {
    let proc = tempfile::tempdir().unwrap();
    std::fs::write(proc.path().join("stat"), "garbage\n").unwrap();
    let s = Server::start_with(&["--proc-root", proc.path().to_str().unwrap()]);
    s.put_ok("a.txt", b"hello");
    let m = scrape(&s);
    assert_eq!(value(&m, "disgrafs_store_files "), Some(1.0), "{m}");
    assert!(
        m.contains(
            "disgrafs_http_requests_total{method=\"PUT\",route=\"/api/files\",status=\"201\"} 1"
        ),
        "{m}"
    );
    for section in ["cpu", "net_dev", "disk", "tcp", "sockets", "process"] {
        let line = format!("disgrafs_scrape_ok{{section=\"{section}\"}} 0");
        assert!(m.contains(&line), "{line} missing:\n{m}");
    }
    assert!(!m.contains("disgrafs_system_cpu_seconds"), "{m}");
    // Removing the directory under the running server changes nothing either.
    drop(proc);
    assert!(scrape(&s).contains("disgrafs_store_files 1"));
}

/// `GET /api/metrics/recent` until it holds at least `n` points newer than `since`.
fn recent_until(s: &Server, since: Option<u64>, n: usize) -> disgrafs_core::api::RecentMetrics {
    let q = since.map_or(String::new(), |t| format!("?since={t}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r: disgrafs_core::api::RecentMetrics =
            serde_json::from_value(s.get_json(&format!("/api/metrics/recent{q}"))).unwrap();
        if r.points.len() >= n || std::time::Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The Monitor view's data: the dashboard's figures, a point a second, only the newer ones on
/// request; a bad `since` is refused.
#[test]
fn recent_figures_after_traffic() {
    let s = Server::start();
    let first = recent_until(&s, None, 1);
    assert!(!first.points.is_empty(), "no point within 30 s");
    for _ in 0..5 {
        s.get_json("/api/health");
    }
    let last = first.points.last().unwrap().t;
    let newer = recent_until(&s, Some(last), 2);
    assert!(newer.points.len() >= 2, "{newer:?}");
    assert!(newer.points.iter().all(|p| p.t > last), "{newer:?}");
    assert!(newer.points.windows(2).all(|w| w[0].t < w[1].t));
    assert!(newer.points.len() as u64 <= newer.keep);
    let ids: Vec<&str> = newer.figures.iter().map(|f| f.id.as_str()).collect();
    for id in [
        "cpu_peak",
        "network",
        "disk_write",
        "disk_read",
        "io_share",
        "tcp",
        "sockets",
        "requests",
        "latency",
        "tagging",
        "accel",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    // The health checks between the two reads show as 2xx requests, with their latency.
    let got = |fig: &str, series: &str| {
        newer
            .points
            .iter()
            .filter_map(|p| p.values.get(fig)?.get(series).copied())
            .fold(0.0, f64::max)
    };
    assert!(got("requests", "2xx") > 0.0, "{newer:?}");
    assert!(got("latency", "p99") > 0.0, "{newer:?}");
    assert!(
        newer
            .points
            .iter()
            .all(|p| p.values["cpu_peak"].contains_key("busiest CPU")),
        "{newer:?}"
    );
    assert!(got("sockets", "all") > 0.0, "{newer:?}");
    assert!(got("network", "lo rx") > 0.0, "{newer:?}");
    let r = s
        .http()
        .get(format!("{}/api/metrics/recent?since=yesterday", s.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let doc = s.get_json("/api/openapi.json");
    assert!(
        doc["paths"]["/api/metrics/recent"]["get"].is_object(),
        "{doc}"
    );
    assert!(doc["components"]["schemas"]["RecentMetrics"].is_object());
}
