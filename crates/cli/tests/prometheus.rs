//! A real Prometheus (Debian package `prometheus`, installed by scripts/deps.d/40-metrics.sh)
//! scrapes the real `disgrafs serve` every second while traffic runs; then every panel
//! expression of docs/grafana/disgrafs.json must return data through Prometheus' HTTP API.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/grafana/disgrafs.json"
);

/// The Prometheus we started, killed by its PID when dropped (also when the test panics).
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Prometheus scraping `target` with `token` (its `authorization` setting: Bearer).
fn start_prometheus(target: &str, token: &str) -> Prometheus {
    let bin = std::env::var("PROMETHEUS").unwrap_or_else(|_| "/usr/bin/prometheus".into());
    assert!(
        std::path::Path::new(&bin).exists(),
        "{bin} is missing: scripts/deps.d/40-metrics.sh installs the Debian package prometheus"
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: disgrafs\n    static_configs:\n      - targets: ['{target}']\n    authorization:\n      credentials: '{token}'\n"
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let child = Command::new(&bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    Prometheus {
        child,
        url: format!("http://{listen}"),
        _dir: dir,
    }
}

/// Every `expr` of every panel target, with Grafana's interval variable made concrete.
fn panel_expressions() -> Vec<(String, String)> {
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "15s");
            out.push((p["title"].as_str().unwrap().to_string(), expr));
        }
    }
    out
}

fn query(http: &reqwest::blocking::Client, prom: &str, expr: &str) -> Result<usize, String> {
    let r = http
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .map_err(|e| e.to_string())?;
    let v: serde_json::Value = r.json().map_err(|e| e.to_string())?;
    if v["status"] != "success" {
        return Err(format!("{v}"));
    }
    Ok(v["data"]["result"].as_array().map_or(0, Vec::len))
}

#[test]
fn every_dashboard_panel_has_data_in_prometheus() {
    let exprs = panel_expressions();
    let s = Arc::new(Server::start());
    let prom = start_prometheus(&s.addr, &s.token);
    let stop = Arc::new(AtomicBool::new(false));
    // Uploads (tagged in the background), downloads and lookups until the checks are done,
    // bounded in count and time.
    let traffic = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(180);
            for i in 0..2000u64 {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                let body = format!("# note {i}\nPrometheus scrapes disgrafs while uploads run.\n");
                let f = s.put_ok(&format!("n{i}.md"), body.as_bytes());
                let id = f["id"].as_str().unwrap();
                s.content(id);
                s.get_json(&format!("/api/files/{id}"));
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let http = s.http();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut missing: Vec<(String, String, String)> = Vec::new();
    for (title, expr) in &exprs {
        loop {
            match query(&http, &prom.url, expr) {
                Ok(n) if n > 0 => break,
                r if Instant::now() > deadline => {
                    let why = match r {
                        Ok(_) => "no data".to_string(),
                        Err(e) => e,
                    };
                    missing.push((title.clone(), expr.clone(), why));
                    break;
                }
                _ => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
    assert!(
        missing.is_empty(),
        "{} of {} panel expressions returned nothing:\n{missing:#?}",
        missing.len(),
        exprs.len()
    );
}
