//! The Host check against DNS rebinding: a page on a name the attacker owns, resolved to
//! 127.0.0.1, reaches the server with its own name as Host; every route refuses it with 421,
//! while the loopback names, the listen address and configured `allowed_hosts` are served.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;
use reqwest::blocking::Response;
use reqwest::header::{HOST, ORIGIN};

fn port(s: &Server) -> &str {
    s.addr.rsplit_once(':').unwrap().1
}

fn get_as(s: &Server, host: &str, path: &str) -> Response {
    s.http()
        .get(format!("{}{path}", s.url))
        .header(HOST, host)
        .send()
        .unwrap()
}

fn assert_misdirected(r: Response, what: &str) {
    assert_eq!(r.status(), 421, "{what}");
    let body: serde_json::Value = r.json().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(body["code"], "unknown_host", "{what}: {body}");
    assert!(body["error"].as_str().is_some(), "{what}: {body}");
}

#[test]
fn a_rebinding_page_can_neither_delete_nor_read() {
    let s = Server::start();
    let id = s.put_ok("keep.txt", b"mine")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let evil = format!("evil.test:{}", port(&s));

    let r = s
        .http()
        .delete(format!("{}/api/files/{id}", s.url))
        .header(HOST, &evil)
        .header(ORIGIN, format!("http://{evil}"))
        .send()
        .unwrap();
    assert_misdirected(r, "DELETE");
    assert_eq!(s.content(&id), b"mine", "the file is still there");

    for path in [
        "/api/files".to_owned(),
        format!("/api/files/{id}"),
        format!("/api/files/{id}/content"),
        "/api/events".to_owned(),
        "/api/health".to_owned(),
        "/".to_owned(),
        "/index.html".to_owned(),
        "/assets/none.js".to_owned(),
        "/no/such/route".to_owned(),
    ] {
        assert_misdirected(get_as(&s, &evil, &path), &format!("GET {path}"));
    }
    // A name that merely starts like a loopback one is the attacker's too.
    assert_misdirected(
        get_as(
            &s,
            &format!("localhost.evil.test:{}", port(&s)),
            "/api/files",
        ),
        "localhost.evil.test",
    );
    // HTTP/1.1 without any Host.
    let raw = s.raw(
        b"GET /api/files HTTP/1.1\r\nConnection: close\r\n\r\n",
        std::time::Duration::from_secs(5),
    );
    assert!(
        raw.starts_with("HTTP/1.1 400") || raw.starts_with("HTTP/1.1 421"),
        "{raw}"
    );
}

#[test]
fn loopback_names_and_the_listen_address_are_served() {
    let s = Server::start();
    let id = s.put_ok("a.txt", b"alpha")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let p = port(&s);
    for host in [
        format!("127.0.0.1:{p}"),
        format!("localhost:{p}"),
        format!("app.localhost:{p}"),
        format!("[::1]:{p}"),
    ] {
        let r = get_as(&s, &host, &format!("/api/files/{id}"));
        assert_eq!(r.status(), 200, "{host}");
        let r = get_as(&s, &host, "/");
        assert_eq!(r.status(), 200, "page as {host}");
    }
    // The page's own writes (Origin = Host) still work on a loopback name.
    let host = format!("localhost:{p}");
    let r = s
        .http()
        .delete(format!("{}/api/files/{id}", s.url))
        .header(HOST, &host)
        .header(ORIGIN, format!("http://{host}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[test]
fn configured_hosts_are_served_from_flags_and_the_config_file() {
    let s = Server::start_with(&["--allowed-host", "files.example.test"]);
    let p = port(&s);
    assert_eq!(
        get_as(&s, &format!("files.example.test:{p}"), "/api/health").status(),
        200
    );
    assert_eq!(
        get_as(&s, "FILES.example.test", "/api/health").status(),
        200,
        "names compare without case, and without a port any port does"
    );
    assert_misdirected(
        get_as(&s, &format!("other.example.test:{p}"), "/api/health"),
        "not configured",
    );
    drop(s);

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("disgrafs.toml");
    std::fs::write(&cfg, "allowed_hosts = [\"proxy.example.test:8443\"]\n").unwrap();
    let s = Server::start_at(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    assert_eq!(
        get_as(&s, "proxy.example.test:8443", "/api/health").status(),
        200
    );
    assert_misdirected(
        get_as(&s, "proxy.example.test:9000", "/api/health"),
        "a configured port is the only one",
    );
}

#[test]
fn a_bad_allowed_host_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "allowed_hosts = [\"http://x/\"]\n").unwrap();
    let serve = |args: &[&str], env: Option<&str>| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("d"))
            .args(args);
        if let Some(v) = env {
            cmd.env("DISGRAFS_ALLOWED_HOSTS", v);
        }
        let out = cmd.output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (status, err) = serve(&["--config", cfg.to_str().unwrap()], None);
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("allowed host \"http://x/\""), "{err}");
    // Flags and the environment are refused by the argument parser (usage errors: status 2).
    for (args, env, bad) in [
        (&["--allowed-host", "a b"][..], None, "a b"),
        (&[][..], Some("ok.test,x:port"), "x:port"),
    ] {
        let (status, err) = serve(args, env);
        assert_eq!(status.code(), Some(2), "{args:?} {env:?}: {err}");
        assert!(err.contains(&format!("allowed host {bad:?}")), "{err}");
    }
}
