//! `serve --tls-cert/--tls-key`: HTTPS with a certificate from the test's own CA, reloaded on
//! SIGHUP without a restart; bad certificates and plain HTTP beyond loopback refused at start-up.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;
use std::path::Path;

/// A CA of the test's own, and leaf certificates for `localhost` signed by it.
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl Ca {
    fn new() -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "disgrafs test CA");
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        }
    }

    /// Writes a new leaf for localhost with `serial` to `dir/cert.pem` and `dir/key.pem`;
    /// returns its DER.
    fn leaf(&self, dir: &Path, serial: u64) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        cert.der().to_vec()
    }
}

fn start_tls(dir: &Path) -> Server {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    Server::start_with(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
}

fn url(s: &Server, path: &str) -> String {
    let port = s.addr.rsplit(':').next().unwrap();
    format!("https://localhost:{port}{path}")
}

/// The DER of the certificate the server showed on a new connection.
fn served_cert(s: &Server, ca: &Ca) -> Vec<u8> {
    let r = s.https(&ca.pem).get(url(s, "/api/health")).send().unwrap();
    assert_eq!(r.status(), 200);
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|t| t.peer_certificate())
        .expect("the server's certificate")
        .to_vec()
}

#[test]
fn https_serves_files_byte_for_byte_and_reloads_its_certificate_on_sighup() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let first = ca.leaf(dir.path(), 1);
    let s = start_tls(dir.path());
    let c = s.https(&ca.pem);

    let body = bytes(3 << 20, 7);
    let r = c
        .put(url(&s, "/api/files"))
        .query(&[("name", "over-tls.bin")])
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = c
        .get(url(&s, &format!("/api/files/{id}/content")))
        .send()
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(b3(&got.bytes().unwrap()), b3(&body));
    assert_eq!(served_cert(&s, &ca), first);

    // Plain HTTP on the TLS port is no request.
    assert!(
        !s.raw(
            b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n",
            std::time::Duration::from_secs(5)
        )
        .contains("200 OK")
    );

    // A broken new certificate: the old one stays.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    sighup(&s);
    assert_eq!(served_cert(&s, &ca), first);

    // A new certificate: new connections get it, the server never restarted.
    let second = ca.leaf(dir.path(), 2);
    assert_ne!(first, second);
    sighup(&s);
    let mut seen = served_cert(&s, &ca);
    for _ in 0..100 {
        if seen == second {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        seen = served_cert(&s, &ca);
    }
    assert_eq!(seen, second, "the reloaded certificate");
    // The same process, and it still has the file.
    assert_eq!(
        b3(&c
            .get(url(&s, &format!("/api/files/{id}/content")))
            .send()
            .unwrap()
            .bytes()
            .unwrap()),
        b3(&body)
    );
}

fn sighup(s: &Server) {
    let pid = s.pid() as libc::pid_t;
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
}

/// Runs `serve` with `args` and returns its one-line error.
fn refused(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .arg("serve")
        .args(args)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.starts_with("disgrafs: "), "{err}");
    assert!(out.stdout.is_empty(), "no address line: {:?}", out.stdout);
    err
}

#[test]
fn bad_certificates_and_plain_http_beyond_loopback_are_refused_at_start_up() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    ca.leaf(dir.path(), 1);
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let other = tempfile::tempdir().unwrap();
    ca.leaf(other.path(), 2);
    let other_key = other.path().join("key.pem");
    let other_key = other_key.to_str().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnope\n").unwrap();
    let garbage = garbage.to_str().unwrap();
    let l = ["--listen", "127.0.0.1:0"];
    for (args, says) in [
        (
            vec!["--tls-cert", "/no/such.pem", "--tls-key", key],
            "/no/such.pem",
        ),
        (vec!["--tls-cert", garbage, "--tls-key", key], garbage),
        (
            vec!["--tls-cert", key, "--tls-key", key],
            "no PEM certificate",
        ),
        (vec!["--tls-cert", cert, "--tls-key", cert], cert),
        (vec!["--tls-cert", cert, "--tls-key", other_key], other_key),
    ] {
        let err = refused(&[&l[..], &args[..]].concat());
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Beyond loopback, plain HTTP only when asked for.
    let err = refused(&["--listen", "0.0.0.0:0"]);
    assert!(err.contains("--insecure"), "{err}");
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0", "--insecure", "--data-dir"])
        .arg(data.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    child.kill().ok();
    child.wait().ok();
    assert!(
        line.starts_with("disgrafs listening on http://0.0.0.0:"),
        "{line}"
    );
}
