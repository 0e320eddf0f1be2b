//! `disgrafs mount` against the real server: a real FUSE mount in a temporary directory, used
//! by real shell commands (ls, cp, mv, rm, find, grep -r, rsync -a, cat, cmp, dd), the layout's
//! write rules seen through the API, the cache following the server's events, EIO when the
//! server is gone, and no mount left behind (SIGTERM, SIGKILL of the mount, a failing test).
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a shell command in the mount may take before the test calls it hung.
const COMMAND_LIMIT: &str = "60";
/// How long something that follows an event may take to show.
const EVENT_WAIT: Duration = Duration::from_secs(15);

fn require_fuse() {
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: these tests need the fuse kernel module (modprobe fuse)"
    );
    let found = Command::new("fusermount3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "fusermount3 is missing: install Debian's fuse3 (scripts/deps.d/72-fuse.sh)"
    );
}

/// Whether something is mounted on `dir` (per /proc/self/mountinfo).
fn mounted(dir: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.to_str().unwrap();
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| m == dir))
}

fn wait_unmounted(dir: &Path) -> bool {
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        if !mounted(dir) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A `disgrafs mount` of a server, unmounted however the test ends: SIGTERM to the mount (by
/// its PID), then `fusermount3 -u -z`; the mount also dies with the thread that started it
/// (PR_SET_PDEATHSIG) and, killed, is unmounted by fusermount3 (auto_unmount).
struct Mount {
    child: Option<Child>,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Mount {
    fn start(server: &Server) -> Self {
        Mount::start_as(server, &server.token)
    }

    /// A mount with `token`'s credential: it sees what that token's user may see.
    fn start_as(server: &Server, token: &str) -> Self {
        require_fuse();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        let mut cmd = server.cmd();
        cmd.arg("mount")
            .arg(&dir)
            .args(["--server", &server.url, "--auto-unmount", "--timeout", "5"])
            .env("DISGRAFS_LOG", "warn")
            .env("DISGRAFS_TOKEN", token)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: prctl is async-signal-safe and only sets this child's parent-death signal.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("start disgrafs mount");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("mounted "), "disgrafs mount said {line:?}");
        assert!(mounted(&dir), "not in mountinfo: {}", dir.display());
        Mount {
            child: Some(child),
            dir,
            _tmp: tmp,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Runs `script` in bash in the mount's directory (bounded by `timeout`).
    fn sh(&self, script: &str) -> Output {
        Command::new("timeout")
            .args([COMMAND_LIMIT, "bash", "-c", script])
            .current_dir(&self.dir)
            .output()
            .unwrap()
    }

    /// [`Mount::sh`] that must succeed; its stdout.
    fn ok(&self, script: &str) -> String {
        let o = self.sh(script);
        assert!(
            o.status.success(),
            "{script}: {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Sends SIGTERM and waits for the mount to end; its exit status.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: a signal to the PID of our own child, which has not been waited for.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > until {
                child.kill().ok();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.stop();
        if mounted(&self.dir) {
            Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(&self.dir)
                .status()
                .ok();
        }
    }
}

fn lines(s: &str) -> Vec<&str> {
    let mut v: Vec<&str> = s.lines().collect();
    v.sort();
    v
}

/// Waits until `check` holds (it follows an event), or fails.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + EVENT_WAIT;
    while !check() {
        assert!(Instant::now() < until, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn shell_commands_see_the_layout() {
    let s = Server::start();
    let a = s.post_part("docs/a.txt", b"alpha beta\n");
    assert_eq!(a.status(), 201);
    let a_id = a.json::<serde_json::Value>().unwrap()["files"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(s.post_part("docs/sub/b.txt", b"gamma\n").status(), 201);
    s.tag(&a_id, &["red", "blue"]);
    s.wait_tagged();
    let m = Mount::start(&s);

    assert_eq!(lines(&m.ok("ls")), ["files", "query", "recent", "tags"]);
    assert_eq!(lines(&m.ok("ls files/docs")), ["a.txt", "sub"]);
    assert_eq!(
        lines(&m.ok("find files -type f")),
        ["files/docs/a.txt", "files/docs/sub/b.txt"]
    );
    assert_eq!(m.ok("grep -r alpha files"), "files/docs/a.txt:alpha beta\n");
    assert_eq!(m.ok("cat tags/red/blue/a.txt"), "alpha beta\n");
    assert_eq!(m.ok("ls 'query/red AND NOT green'"), "a.txt\n");
    assert!(m.ok("ls recent").contains("b.txt"));
    assert_eq!(m.ok("stat -c %s files/docs/a.txt"), "11\n");

    // cp into a tag directory uploads the file with the tag.
    m.ok("printf 'new file\\n' > /tmp/disgrafs-mount-new.txt && cp /tmp/disgrafs-mount-new.txt tags/red/new.txt");
    assert!(s.names("red").contains(&"new.txt".to_owned()));
    assert_eq!(m.ok("cat tags/red/new.txt"), "new file\n");
    // mv between tag directories retags; rm in a tag directory untags, the file stays.
    m.ok("mv tags/red/new.txt tags/blue/new.txt");
    assert!(!s.names("red").contains(&"new.txt".to_owned()));
    assert!(s.names("blue").contains(&"new.txt".to_owned()));
    m.ok("rm tags/blue/new.txt");
    assert!(!s.names("blue").contains(&"new.txt".to_owned()));
    assert!(s.names("name:new.txt").contains(&"new.txt".to_owned()));

    // mkdir in files/ makes a folder; cp and mv there; rm deletes.
    m.ok("mkdir files/made && cp files/docs/a.txt files/made/copy.txt");
    assert_eq!(m.ok("cat files/made/copy.txt"), "alpha beta\n");
    m.ok("mv files/made/copy.txt files/made/moved.txt");
    assert_eq!(lines(&m.ok("ls files/made")), ["moved.txt"]);
    m.ok("rm files/made/moved.txt && rmdir files/made");
    assert!(!m.ok("ls files").contains("made"));
    let e = m.sh("rmdir files/docs");
    assert!(!e.status.success(), "rmdir of a folder with files");
    let e = m.sh("rm query/red/a.txt");
    assert!(!e.status.success(), "query/ is read-only");

    // rsync -a of a folder, and back byte-identical.
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("tree/deep")).unwrap();
    for i in 0..20 {
        let sub = if i % 2 == 0 { "tree" } else { "tree/deep" };
        std::fs::write(
            src.path().join(format!("{sub}/f{i}.bin")),
            bytes(1000 + i * 997, i as u64),
        )
        .unwrap();
    }
    let from = src.path().join("tree");
    m.ok(&format!("rsync -a {}/ files/synced/", from.display()));
    m.ok(&format!("diff -r {} files/synced", from.display()));
    let back = src.path().join("back");
    m.ok(&format!("rsync -a files/synced/ {}/", back.display()));
    m.ok(&format!("diff -r {} {}", from.display(), back.display()));

    // A change made through the API shows after its event.
    s.put_ok("from-api.txt", b"api\n");
    eventually("from-api.txt in files/", || {
        m.ok("ls files").contains("from-api.txt")
    });
    s.tag(&a_id, &["green"]);
    eventually("a.txt in tags/green/", || {
        m.sh("ls tags/green").status.success() && m.ok("ls tags/green").contains("a.txt")
    });
    m.ok("rm files/docs/a.txt");
    let r = s
        .http()
        .get(format!("{}/api/files/{a_id}", s.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404, "rm in files/ deletes");
}

#[test]
fn a_mount_sees_only_what_its_user_may_see() {
    let s = Server::start_with(&["--workers", "0"]);
    let token = |user: &str| {
        let out = s
            .cmd()
            .args([
                "admin", "token", "--create", "--scope", "write", "--user", user,
            ])
            .arg("--data-dir")
            .arg(&s.data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (alice, bob) = (token("alice"), token("bob"));
    let put = |t: &str, name: &str, folder: &str, body: &str| {
        let r = http_with(Some(t))
            .put(format!("{}/api/files?name={name}&folder={folder}", s.url))
            .body(body.to_owned())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    };
    put(&alice, "plan.md", "vault", "alice's plan\n");
    put(&bob, "notes.md", "desk", "bob's notes\n");
    let m = Mount::start_as(&s, &bob);
    assert_eq!(lines(&m.ok("find files -type f")), ["files/desk/notes.md"]);
    assert_eq!(lines(&m.ok("ls tags")), ["desk"]);
    assert_eq!(m.ok("ls recent"), "notes.md\n");
    assert_eq!(m.ok("grep -r plan . || true"), "");
    for path in [
        "files/vault/plan.md",
        "tags/vault/plan.md",
        "query/vault/plan.md",
    ] {
        let e = m.sh(&format!("cat {path}"));
        assert!(!e.status.success(), "{path} is not bob's to read");
    }
    // Bob's writes are his: a file he copies in is his, alice's stays out of his reach.
    m.ok("cp files/desk/notes.md files/desk/copy.md");
    let e = m.sh("rm files/vault/plan.md");
    assert!(!e.status.success());
    let listed: serde_json::Value = http_with(Some(&alice))
        .get(format!("{}/api/files", s.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed["total"], 1, "alice sees her one file: {listed}");
    let listed: serde_json::Value = http_with(Some(&bob))
        .get(format!("{}/api/files", s.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed["total"], 2, "bob's two: {listed}");
}

#[test]
fn a_large_file_streams_both_ways() {
    let s = Server::start();
    let m = Mount::start(&s);
    let data = bytes(48 << 20, 7);
    let local = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(local.path(), &data).unwrap();
    m.ok(&format!("cp {} files/big.bin", local.path().display()));
    let id = s.get_json("/api/files?q=name:big.bin")["files"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(b3(&s.content(&id)), b3(&data), "uploaded byte-identical");
    // Read back through the mount, whole and from the middle (Range).
    let whole = std::fs::read(m.path("files/big.bin")).unwrap();
    assert!(whole == data, "cat gives the same bytes");
    m.ok(&format!("cmp {} files/big.bin", local.path().display()));
    let mid = m.sh("dd if=files/big.bin bs=1M skip=29 count=3 status=none");
    assert!(mid.status.success());
    assert!(
        mid.stdout == data[29 << 20..32 << 20],
        "a read from the middle"
    );
    // Reads at scattered offsets, as a program seeking around does.
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(m.path("files/big.bin")).unwrap();
    for at in [40u64 << 20, 1 << 20, 47 << 20, 0, 20 << 20] {
        let mut buf = vec![0; 100_000];
        f.seek(SeekFrom::Start(at)).unwrap();
        f.read_exact(&mut buf).unwrap();
        assert!(
            buf[..] == data[at as usize..at as usize + 100_000],
            "at {at}"
        );
    }
}

#[test]
fn the_server_gone_gives_eio_and_the_mount_still_ends() {
    let s = Server::start();
    s.put_ok("a.txt", b"hello\n");
    let mut m = Mount::start(&s);
    assert_eq!(m.ok("cat files/a.txt"), "hello\n");
    let (_data, _dir) = s.kill();
    let o = m.sh("cat files/a.txt; ls files");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Input/output error"), "{err}");
    // A hung call would have been stopped by `timeout` (status 124, no EIO).
    let status = m.stop().expect("was running");
    assert!(status.success(), "disgrafs mount exited with {status}");
    assert!(wait_unmounted(&m.dir), "unmounted after SIGTERM");
}

#[test]
fn a_killed_mount_is_unmounted() {
    let s = Server::start();
    let mut m = Mount::start(&s);
    m.ok("ls files");
    let mut child = m.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(wait_unmounted(&m.dir), "auto_unmount after SIGKILL");
    let o = Command::new("ls").arg(&m.dir).output().unwrap();
    assert!(
        o.status.success(),
        "the mountpoint is a plain directory again"
    );
}
