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
    _dir: Option<tempfile::TempDir>,
}

/// Runs `cmd` (the `disgrafs` binary, perhaps wrapped) as `serve` on an ephemeral loopback port
/// over `data`, and returns the child with the address it printed on its first line.
pub fn spawn_serve(mut cmd: Command, data: &Path, args: &[&str]) -> (Child, String) {
    let mut child = cmd
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(args)
        .env("DISGRAFS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start disgrafs serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read the address line");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
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
            _dir: None,
        }
    }

    /// Stops the server hard (SIGKILL), keeping its data directory; returns the directory's owner.
    pub fn kill(mut self) -> (PathBuf, Option<tempfile::TempDir>) {
        self.child.kill().ok();
        self.child.wait().ok();
        (self.data.clone(), self._dir.take())
    }

    pub fn http(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
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

    /// Sends raw bytes on a fresh connection and returns what came back until the server closed
    /// or `wait` passed.
    pub fn raw(&self, bytes: &[u8], wait: Duration) -> String {
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

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Runs SQL on the database of a stopped server's data directory (to plant what HTTP cannot make,
/// or only slowly).
pub fn stopped_sql(data: &Path, q: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::ConnectOptions;
        let mut db = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(data.join("disgrafs.db"))
            .connect()
            .await
            .unwrap();
        sqlx::query(q).execute(&mut db).await.unwrap();
    });
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
