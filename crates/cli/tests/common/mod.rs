//! The test fixture: the real `disgrafs serve` on an ephemeral port over a temporary data
//! directory, killed (by the PID we started) when dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_disgrafs");

pub struct Server {
    child: Child,
    pub url: String,
    pub addr: String,
    pub data: PathBuf,
    /// An admin-scope API token of the data directory's test user, which [`Server::http`],
    /// [`Server::cmd`] and [`Server::raw`] send.
    pub token: String,
    _dir: Option<tempfile::TempDir>,
}

/// The user the fixture provisions.
pub const TEST_USER: &str = "tester";

/// `--meta URL` in serve's arguments (or `--meta=URL`).
fn meta_arg<'a>(args: &[&'a str]) -> Option<&'a str> {
    args.iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--meta") {
            Some("") => args.get(i + 1).copied(),
            Some(rest) => rest.strip_prefix('='),
            None => None,
        })
}

/// The token of `data`'s test user: made once by `disgrafs admin token --create` (on the data
/// directory, or on `--meta` when `args` name one) and kept beside the directory (`DATA.token`),
/// so a restart on the same directory sends the same one. Empty when provisioning failed (a
/// test of a start that must fail, say): serve then reports why.
pub fn provision(data: &Path, args: &[&str]) -> String {
    let file = data.with_extension("token");
    if let Ok(t) = std::fs::read_to_string(&file) {
        return t;
    }
    let mut cmd = Command::new(BIN);
    cmd.args([
        "admin", "token", "--create", "--scope", "admin", "--user", TEST_USER,
    ])
    .arg("--data-dir")
    .arg(data)
    .env_remove("DISGRAFS_META");
    if let Some(meta) = meta_arg(args) {
        cmd.args(["--meta", meta]);
    }
    let out = cmd.output().expect("run disgrafs admin token");
    if !out.status.success() {
        return String::new();
    }
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    std::fs::write(&file, &token).unwrap();
    token
}

/// Runs `cmd` (the `disgrafs` binary, perhaps wrapped) as `serve` on an ephemeral loopback port
/// over `data` (provisioned first, see [`provision`]), and returns the child with the address it
/// printed on its first line.
pub fn spawn_serve(cmd: Command, data: &Path, args: &[&str]) -> (Child, String) {
    provision(data, args);
    spawn_serve_unprovisioned(cmd, data, args)
}

/// [`spawn_serve`] without provisioning a user (a first start).
pub fn spawn_serve_unprovisioned(cmd: Command, data: &Path, args: &[&str]) -> (Child, String) {
    spawn_serve_with(cmd, data, args, Stdio::inherit())
}

/// Starts serve with `stderr` (`DISGRAFS_LOG=warn` unless `cmd` sets it), unprovisioned.
pub fn spawn_serve_with(
    mut cmd: Command,
    data: &Path,
    args: &[&str],
    stderr: Stdio,
) -> (Child, String) {
    if !cmd.get_envs().any(|(k, _)| k == "DISGRAFS_LOG") {
        cmd.env("DISGRAFS_LOG", "warn");
    }
    let mut child = cmd
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start disgrafs serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read the address line");
    let addr = line
        .split_whitespace()
        .find_map(|w| {
            w.strip_prefix("http://")
                .or_else(|| w.strip_prefix("https://"))
        })
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (child, addr)
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let mut s = Self::start_at(&data, args);
        s._dir = Some(dir);
        s
    }

    /// Starts on an existing data directory (a restart).
    pub fn start_at(data: &Path, args: &[&str]) -> Self {
        Self::start_cmd(Command::new(BIN), data, args)
    }

    /// Starts `cmd` (the binary with its environment, say) on `data`.
    pub fn start_cmd(cmd: Command, data: &Path, args: &[&str]) -> Self {
        let (child, addr) = spawn_serve(cmd, data, args);
        let url = format!("http://{addr}");
        Server {
            child,
            url,
            addr,
            data: data.to_path_buf(),
            token: provision(data, args),
            _dir: None,
        }
    }

    /// Stops the server hard (SIGKILL), keeping its data directory; returns the directory's owner.
    pub fn kill(mut self) -> (PathBuf, Option<tempfile::TempDir>) {
        self.child.kill().ok();
        self.child.wait().ok();
        (self.data.clone(), self._dir.take())
    }

    /// The server's process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An HTTP client that sends the fixture's token (`Authorization: Bearer`).
    pub fn http(&self) -> reqwest::blocking::Client {
        http_with(Some(&self.token))
    }

    /// An HTTP client without a credential.
    pub fn http_anon(&self) -> reqwest::blocking::Client {
        http_with(None)
    }

    /// The `disgrafs` binary set to talk to this server with its token (`DISGRAFS_SERVER`,
    /// `DISGRAFS_TOKEN`), for client commands.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("DISGRAFS_SERVER", &self.url)
            .env("DISGRAFS_TOKEN", &self.token);
        c
    }

    /// The typed client of `disgrafs-client`, with the token.
    pub fn client(&self) -> disgrafs_client::Client {
        disgrafs_client::Client::new(&self.url, Some(&self.token)).unwrap()
    }

    /// The `Authorization` header line of the token, for raw requests.
    pub fn auth_line(&self) -> String {
        format!("Authorization: Bearer {}\r\n", self.token)
    }

    /// A client of the server's HTTPS listener (`serve --tls-cert`) that trusts `ca_pem`, with
    /// the TLS details of each response (`reqwest::tls::TlsInfo`).
    pub fn https(&self, ca_pem: &str) -> reqwest::blocking::Client {
        client_builder(Some(&self.token))
            .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
            .tls_info(true)
            .build()
            .unwrap()
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self
            .http()
            .get(format!("{}{path}", self.url))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().unwrap()
    }

    /// `PUT /api/files?name=` with a body; returns the status and JSON body.
    pub fn put(&self, name: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
        let r = self
            .http()
            .put(format!("{}/api/files", self.url))
            .query(&[("name", name)])
            .body(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(serde_json::Value::Null))
    }

    /// `POST /api/files` of one multipart part named `filename` (a name or a relative path).
    pub fn post_part(&self, filename: &str, body: &[u8]) -> reqwest::blocking::Response {
        let form = reqwest::blocking::multipart::Form::new().part(
            "file",
            reqwest::blocking::multipart::Part::bytes(body.to_vec()).file_name(filename.to_owned()),
        );
        self.http()
            .post(format!("{}/api/files", self.url))
            .multipart(form)
            .send()
            .unwrap()
    }

    pub fn put_ok(&self, name: &str, body: &[u8]) -> serde_json::Value {
        let (s, v) = self.put(name, body.to_vec());
        assert_eq!(s, 201, "{v}");
        v
    }

    pub fn content(&self, id: &str) -> Vec<u8> {
        let r = self
            .http()
            .get(format!("{}/api/files/{id}/content", self.url))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().unwrap().to_vec()
    }

    pub fn tag(&self, id: &str, tags: &[&str]) -> serde_json::Value {
        let r = self
            .http()
            .post(format!("{}/api/files/{id}/tags", self.url))
            .json(&serde_json::json!({ "tags": tags }))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().unwrap()
    }

    /// Names of the files a query finds, sorted.
    pub fn names(&self, q: &str) -> Vec<String> {
        let r = self
            .http()
            .get(format!("{}/api/files", self.url))
            .query(&[("q", q), ("limit", "1000")])
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "query {q:?}");
        let v: serde_json::Value = r.json().unwrap();
        let mut n: Vec<String> = v["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .collect();
        n.sort();
        n
    }

    /// Waits until every file's automatic tagging has finished.
    pub fn wait_tagged(&self) {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let h = self.get_json("/api/health");
            if h["jobs_queued"] == 0 && h["jobs_running"] == 0 {
                return;
            }
            assert!(Instant::now() < until, "tagging did not finish: {h}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends raw bytes on a fresh connection, with the token's header put after the request
    /// line (when there is one), and returns what came back until the server closed or `wait`
    /// passed.
    pub fn raw(&self, bytes: &[u8], wait: Duration) -> String {
        match bytes.windows(2).position(|w| w == b"\r\n") {
            Some(i) => {
                let mut with = bytes[..i + 2].to_vec();
                with.extend_from_slice(self.auth_line().as_bytes());
                with.extend_from_slice(&bytes[i + 2..]);
                self.raw_anon(&with, wait)
            }
            None => self.raw_anon(bytes, wait),
        }
    }

    /// [`Server::raw`] without the token.
    pub fn raw_anon(&self, bytes: &[u8], wait: Duration) -> String {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(wait)).unwrap();
        s.write_all(bytes).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).ok();
        String::from_utf8_lossy(&out).into_owned()
    }

    /// tus creation-with-upload of `body` as `a.txt`, declaring `len` bytes.
    pub fn tus_create_with(&self, len: u64, body: &'static [u8]) -> reqwest::blocking::Response {
        self.http()
            .post(format!("{}/api/uploads/", self.url))
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", len)
            .header("Upload-Metadata", "filename YS50eHQ=")
            .header("Content-Type", "application/offset+octet-stream")
            .body(body)
            .send()
            .unwrap()
    }

    /// Files in the staging and blob folders.
    pub fn stored_blobs(&self) -> usize {
        count_files(&self.data.join("blobs"))
    }
    pub fn staging_files(&self) -> usize {
        count_files(&self.data.join("tmp/staging"))
    }
}

/// `/api/events` as it comes: each event's kind and its data (JSON text). The subscription is in
/// place when this returns; the iterator ends with the stream.
pub fn events(s: &Server) -> impl Iterator<Item = (String, String)> {
    events_of(&s.http(), s)
}

/// [`events`] as the client `c` sees them.
pub fn events_of(
    c: &reqwest::blocking::Client,
    s: &Server,
) -> impl Iterator<Item = (String, String)> + use<> {
    let resp = c.get(format!("{}/api/events", s.url)).send().unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut lines = BufReader::new(resp).lines();
    let mut kind = String::new();
    std::iter::from_fn(move || {
        while let Some(Ok(line)) = lines.next() {
            if let Some(k) = line.strip_prefix("event: ") {
                kind = k.to_owned();
            } else if let Some(d) = line.strip_prefix("data: ") {
                return Some((kind.clone(), d.to_owned()));
            }
        }
        None
    })
}

/// The file id an event's data names.
pub fn event_file(data: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(data).unwrap();
    v["id"].as_str().unwrap_or_default().to_owned()
}

/// The routes the OpenAPI document lists (so a new route cannot escape a test that walks them),
/// with their methods; each path parameter filled by `fill(path, parameter)`.
pub fn documented_routes(
    s: &Server,
    fill: impl Fn(&str, &str) -> String,
) -> Vec<(reqwest::Method, String)> {
    let doc: serde_json::Value = s
        .http_anon()
        .get(format!("{}/api/openapi.json", s.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let filled: String = path
            .split('/')
            .map(
                |seg| match seg.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some(param) => fill(path, param),
                    None => seg.to_owned(),
                },
            )
            .collect::<Vec<_>>()
            .join("/");
        for m in item.as_object().unwrap().keys() {
            out.push((m.to_uppercase().parse().unwrap(), filled.clone()));
        }
    }
    assert!(out.len() > 20, "the document lists the routes: {out:?}");
    out
}

/// A blocking HTTP client that sends `token`, if any.
pub fn http_with(token: Option<&str>) -> reqwest::blocking::Client {
    client_builder(token).build().unwrap()
}

/// A client builder with the fixture's timeout and, given one, the token.
fn client_builder(token: Option<&str>) -> reqwest::blocking::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {t}").parse().unwrap(),
        );
    }
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .default_headers(headers)
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Runs `f` on a connection to the SQLite database of a data directory.
fn with_sqlite<T>(data: &Path, f: impl AsyncFnOnce(&mut sqlx::SqliteConnection) -> T) -> T {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::ConnectOptions;
        let mut db = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(data.join("disgrafs.db"))
            .connect()
            .await
            .unwrap();
        f(&mut db).await
    })
}

/// Runs SQL on the database of a stopped server's data directory (to plant what HTTP cannot make,
/// or only slowly).
pub fn stopped_sql(data: &Path, q: &str) {
    with_sqlite(data, async |db| {
        sqlx::query(q).execute(db).await.unwrap();
    });
}

/// The first column of the first row of a query on a data directory's database.
pub fn sql_text(data: &Path, q: &str) -> String {
    with_sqlite(data, async |db| {
        sqlx::query_scalar::<_, String>(q)
            .fetch_one(db)
            .await
            .unwrap()
    })
}

/// Runs `cmd` with `stdin` written to its standard input; its output.
pub fn output_with_stdin(cmd: &mut Command, stdin: &str) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn count_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            if e.path().is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// Deterministic, incompressible test content.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// A loopback port that was free a moment ago (for a server that takes its port as an argument).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub fn b3(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}
