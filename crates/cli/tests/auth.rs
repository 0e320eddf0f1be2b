//! Accounts and tokens, from outside: every route of the OpenAPI document (so a new route cannot
//! escape) without a credential is 401, with a read token each write is 403; revoked and expired
//! tokens, Basic on /dav/, the page's cookie and its CSRF proof, the rebinding Host, the first
//! start's one-time link, `disgrafs login`'s 0600 file, and secrets kept out of the logs.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use base64::Engine;
use common::*;
use reqwest::Method;
use reqwest::blocking::Response;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

/// The routes the OpenAPI document lists, with methods; path parameters filled with `x` (the
/// credential check comes before any handler, so the value does not matter).
fn documented_routes(s: &Server) -> Vec<(Method, String)> {
    common::documented_routes(s, |_, _| "x".to_owned())
}

/// Paths that take their credential in the body, or describe the API.
const OPEN: [&str; 4] = [
    "/api/auth/login",
    "/api/auth/link",
    "/api/auth/token",
    "/api/openapi.json",
];

/// Whether a path needs no credential: [`OPEN`], and share links (`/s/…`), whose link is the
/// credential (an unknown one is 404).
fn open(path: &str) -> bool {
    OPEN.contains(&path) || path.starts_with("/s/")
}

fn reads(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn send(c: &reqwest::blocking::Client, s: &Server, m: &Method, path: &str) -> Response {
    c.request(m.clone(), format!("{}{path}", s.url))
        .send()
        .unwrap()
}

fn assert_error(r: Response, status: u16, code: &str, what: &str) {
    assert_eq!(r.status(), status, "{what}");
    let body: serde_json::Value = r.json().unwrap_or(serde_json::Value::Null);
    // HEAD answers carry no body.
    if !body.is_null() {
        assert_eq!(body["code"], code, "{what}: {body}");
    }
}

/// `disgrafs admin ARGS` on the server's data directory (beside the running server): stdout,
/// stderr.
fn admin(s: &Server, args: &[&str], stdin: &str) -> (String, String) {
    let out = output_with_stdin(
        Command::new(BIN)
            .arg("admin")
            .args(args)
            .arg("--data-dir")
            .arg(&s.data)
            .env_remove("DISGRAFS_META"),
        stdin,
    );
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    );
    assert!(out.status.success(), "admin {args:?}: {e}");
    (o, e)
}

/// A new token of `scope` for the test user, and its id.
fn token(s: &Server, scope: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["token", "--user", TEST_USER, "--scope", scope];
    args.extend_from_slice(extra);
    let (t, err) = admin(s, &args, "");
    let id = err
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{err}"))
        .to_owned();
    (t, id)
}

#[test]
fn every_route_without_a_credential_is_401() {
    let s = Server::start_with(&["--workers", "0"]);
    let anon = s.http_anon();
    for (m, path) in documented_routes(&s) {
        let r = send(&anon, &s, &m, &path);
        if open(&path) {
            assert_ne!(r.status(), 401, "{m} {path} is open");
        } else {
            assert!(
                r.headers()[reqwest::header::WWW_AUTHENTICATE]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{m} {path}"
            );
            assert_error(r, 401, "unauthorized", &format!("{m} {path}"));
        }
    }
    // Beside the document: WebDAV (whose 401 makes clients ask for Basic), metrics, unknown paths.
    for (m, path) in [
        ("PROPFIND", "/dav/files/"),
        ("GET", "/dav/files/x"),
        ("PUT", "/dav/tags/t/x.txt"),
        ("GET", "/metrics"),
        ("GET", "/api/nothing-here"),
    ] {
        let r = send(&anon, &s, &m.parse().unwrap(), path);
        if path.starts_with("/dav/") {
            assert_eq!(
                r.headers()[reqwest::header::WWW_AUTHENTICATE],
                r#"Basic realm="disgrafs", charset="UTF-8""#
            );
        }
        assert_error(r, 401, "unauthorized", &format!("{m} {path}"));
    }
    // The page's shell stays readable: it carries nothing of the store and shows the login.
    assert_eq!(send(&anon, &s, &Method::GET, "/").status(), 200);
    assert_eq!(send(&anon, &s, &Method::GET, "/login").status(), 200);
    // A wrong or malformed credential is no credential.
    for auth in [
        "Bearer dgf_nope",
        "Bearer ",
        "Basic !!!",
        "Token x",
        "Basic eDp5",
    ] {
        let r = anon
            .get(format!("{}/api/files", s.url))
            .header("Authorization", auth)
            .send()
            .unwrap();
        assert_error(r, 401, "unauthorized", auth);
    }
}

#[test]
fn a_read_token_reads_and_every_write_is_403() {
    let s = Server::start_with(&["--workers", "0"]);
    let id = s.put_ok("a.txt", b"hello")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (read, _) = token(&s, "read", &[]);
    let c = http_with(Some(&read));
    for (m, path) in documented_routes(&s) {
        if open(&path) || reads(&m) {
            continue;
        }
        let r = send(&c, &s, &m, &path);
        assert_error(
            r,
            403,
            "forbidden",
            &format!("{m} {path} with a read token"),
        );
    }
    let r = c
        .get(format!("{}/api/files/{id}/content", s.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().as_ref(), b"hello");
    let r = c.get(format!("{}/api/events", s.url)).send().unwrap();
    assert_eq!(r.status(), 200);
    drop(r);
    // WebDAV: Basic with the token as the password; reading, not writing.
    let basic = |t: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("anyone:{t}"))
        )
    };
    let anon = s.http_anon();
    let r = anon
        .request("PROPFIND".parse().unwrap(), format!("{}/dav/files/", s.url))
        .header("Authorization", basic(&read))
        .header("Depth", "1")
        .send()
        .unwrap();
    assert_eq!(r.status(), 207);
    assert!(r.text().unwrap().contains("a.txt"));
    let r = anon
        .put(format!("{}/dav/files/b.txt", s.url))
        .header("Authorization", basic(&read))
        .body("no")
        .send()
        .unwrap();
    assert_error(r, 403, "forbidden", "DAV PUT with a read token");
    let r = anon
        .put(format!("{}/dav/files/b.txt", s.url))
        .header("Authorization", basic(&s.token))
        .body("yes")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = anon
        .request("PROPFIND".parse().unwrap(), format!("{}/dav/files/", s.url))
        .header("Authorization", basic("dgf_wrong"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    // A token's scope is bounded by its user's role.
    let out = Command::new(BIN)
        .args([
            "admin",
            "user",
            "add",
            "reader",
            "--role",
            "read",
            "--data-dir",
        ])
        .arg(&s.data)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = Command::new(BIN)
        .args([
            "admin",
            "token",
            "--user",
            "reader",
            "--scope",
            "write",
            "--data-dir",
        ])
        .arg(&s.data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("role read"));
}

#[test]
fn revoked_and_expired_tokens_are_401() {
    let s = Server::start_with(&["--workers", "0"]);
    let (t, id) = token(&s, "write", &[]);
    let c = http_with(Some(&t));
    assert_eq!(send(&c, &s, &Method::GET, "/api/files").status(), 200);
    let (listed, _) = admin(&s, &["token", "list", "--user", TEST_USER], "");
    assert!(
        listed.lines().any(|l| l.starts_with(&format!("{id}\t"))),
        "{listed}"
    );
    assert!(!listed.contains("dgf_"), "list shows no secrets: {listed}");
    admin(&s, &["token", "revoke", &id], "");
    assert_error(
        send(&c, &s, &Method::GET, "/api/files"),
        401,
        "unauthorized",
        "revoked",
    );

    let (short, _) = token(&s, "write", &["--expires", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let r = send(&http_with(Some(&short)), &s, &Method::GET, "/api/files");
    assert_error(r, 401, "unauthorized", "expired");
}

#[test]
fn the_page_session_is_a_cookie_and_its_writes_need_the_csrf_header() {
    let s = Server::start_with(&["--workers", "0"]);
    admin(
        &s,
        &["user", "add", "alice", "--password-stdin"],
        "correct horse\n",
    );
    // The hash kept is argon2's PHC string.
    let phc = sql_text(&s.data, "SELECT password FROM users WHERE name = 'alice'");
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    assert!(!phc.contains("correct horse"));

    let anon = s.http_anon();
    let login = |pw: &str| {
        anon.post(format!("{}/api/auth/login", s.url))
            .json(&serde_json::json!({"user": "alice", "password": pw}))
            .send()
            .unwrap()
    };
    assert_error(login("wrong horse"), 401, "unauthorized", "wrong password");
    let r = login("correct horse");
    assert_eq!(r.status(), 200);
    let cookies: Vec<String> = r
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("disgrafs_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    let csrf_cookie = cookies
        .iter()
        .find(|c| c.starts_with("disgrafs_csrf="))
        .unwrap();
    assert!(
        !csrf_cookie.contains("HttpOnly"),
        "the page reads it: {csrf_cookie}"
    );
    let value = |c: &str| {
        c.split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned()
    };
    let (session, csrf) = (value(session), value(csrf_cookie));
    let cookie = format!("disgrafs_session={session}; disgrafs_csrf={csrf}");
    assert_eq!(r.json::<serde_json::Value>().unwrap()["user"], "alice");

    let r = anon
        .get(format!("{}/api/auth/me", s.url))
        .header("Cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(r.json::<serde_json::Value>().unwrap()["scope"], "write");
    let put = |csrf_header: Option<&str>| {
        let mut b = anon
            .put(format!("{}/api/files?name=c.txt", s.url))
            .header("Cookie", &cookie)
            .body("by cookie");
        if let Some(h) = csrf_header {
            b = b.header("x-disgrafs-csrf", h);
        }
        b.send().unwrap()
    };
    assert_error(put(None), 403, "forbidden", "cookie write without CSRF");
    assert_error(
        put(Some(&"0".repeat(64))),
        403,
        "forbidden",
        "wrong CSRF value",
    );
    assert_eq!(put(Some(&csrf)).status(), 201);
    // A page of another site is refused by Origin too, whatever it sends.
    let r = anon
        .delete(format!("{}/api/files/x", s.url))
        .header("Cookie", &cookie)
        .header("x-disgrafs-csrf", &csrf)
        .header("Origin", "http://evil.test")
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);

    let r = anon
        .post(format!("{}/api/auth/logout", s.url))
        .header("Cookie", &cookie)
        .header("x-disgrafs-csrf", &csrf)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = anon
        .get(format!("{}/api/files", s.url))
        .header("Cookie", &cookie)
        .send()
        .unwrap();
    assert_error(r, 401, "unauthorized", "after logout");
}

#[test]
fn a_rebinding_host_is_421_with_or_without_a_token() {
    let s = Server::start_with(&["--workers", "0"]);
    for c in [s.http(), s.http_anon()] {
        let r = c
            .get(format!("{}/api/files", s.url))
            .header("Host", "evil.test")
            .send()
            .unwrap();
        assert_error(r, 421, "unknown_host", "rebinding Host");
    }
}

#[test]
fn first_start_prints_one_single_use_login_link_and_logs_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cmd = Command::new(BIN);
    cmd.env("DISGRAFS_LOG", "debug,tower_http=trace");
    let (mut child, addr) = spawn_serve_with(cmd, &data, &["--workers", "0"], Stdio::piped());
    let url = format!("http://{addr}");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let link = loop {
        let mut l = String::new();
        assert!(err.read_line(&mut l).unwrap() > 0, "no login line");
        if l.contains("/login#") {
            break l;
        }
    };
    let code = link.trim().rsplit_once('#').unwrap().1.to_owned();
    assert!(link.contains(&format!("{url}/login#")), "{link}");
    let c = http_with(None);
    let redeem = || {
        c.post(format!("{url}/api/auth/link"))
            .json(&serde_json::json!({ "code": code }))
            .send()
            .unwrap()
    };
    let r = redeem();
    assert_eq!(r.status(), 200);
    let session = r
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .find_map(|v| {
            v.to_str()
                .unwrap()
                .strip_prefix("disgrafs_session=")
                .map(|v| v.split(';').next().unwrap().to_owned())
        })
        .unwrap();
    assert_eq!(r.json::<serde_json::Value>().unwrap()["scope"], "admin");
    assert_error(redeem(), 401, "unauthorized", "a used link");
    // The link's code is no credential by itself.
    let r = http_with(Some(&code))
        .get(format!("{url}/api/files"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{url}/api/files"))
        .header("Cookie", format!("disgrafs_session={session}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    child.kill().ok();
    child.wait().ok();
    let mut rest = String::new();
    err.read_to_string(&mut rest).ok();
    assert!(!rest.contains(&session), "the session secret was logged");
    assert!(
        !rest.contains(&code),
        "the link was printed twice or logged"
    );
    assert!(!rest.contains("/login#"), "one login line only");
}

#[test]
fn login_stores_the_token_0600_and_commands_use_it() {
    use std::os::unix::fs::PermissionsExt;
    let s = Server::start_with(&["--workers", "0"]);
    admin(
        &s,
        &["user", "add", "bob", "--password-stdin"],
        "bob's password\n",
    );
    let home = tempfile::tempdir().unwrap();
    let login = |args: &[&str], stdin: &str| {
        output_with_stdin(
            Command::new(BIN)
                .arg("login")
                .args(["--server", &s.url])
                .args(args)
                .env("XDG_CONFIG_HOME", home.path())
                .env_remove("DISGRAFS_TOKEN"),
            stdin,
        )
    };
    let out = login(&["--user", "bob"], "wrong\n");
    assert!(!out.status.success());
    let out = login(&["--user", "bob"], "bob's password\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = home.path().join("disgrafs/tokens.json");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(file.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let ls = |env_token: Option<&str>| {
        let mut c = Command::new(BIN);
        c.args(["ls", "--server", &s.url])
            .env("XDG_CONFIG_HOME", home.path())
            .env_remove("DISGRAFS_TOKEN");
        if let Some(t) = env_token {
            c.env("DISGRAFS_TOKEN", t);
        }
        c.output().unwrap()
    };
    assert!(ls(None).status.success(), "the stored token is used");
    let out = ls(Some("dgf_wrong"));
    assert!(!out.status.success(), "DISGRAFS_TOKEN comes first");
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    // A token on standard input works too.
    let out = login(&[], &format!("{}\n", s.token));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without any token, the one line says why.
    let out = Command::new(BIN)
        .args(["ls", "--server", &s.url])
        .env("XDG_CONFIG_HOME", tempfile::tempdir().unwrap().path())
        .env_remove("DISGRAFS_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.lines().count() == 1, "{err}");
    assert!(err.contains("credential"), "{err}");
}
