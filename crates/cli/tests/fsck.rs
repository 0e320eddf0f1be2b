//! Orphaned and damaged contents: the start-up sweep, and `disgrafs fsck` that reports orphans,
//! missing and corrupt contents and reference-count drift, and repairs what is safe.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn blob_path(data: &Path, hash: &str) -> std::path::PathBuf {
    data.join("blobs").join(&hash[..2]).join(hash)
}

/// Plants a content no record points at (what a crash between a commit and its record, or
/// between a deletion's commit and the unlink, leaves); returns its hash.
fn plant_orphan(data: &Path, bytes: &[u8]) -> String {
    let hash = b3(bytes);
    let p = blob_path(data, &hash);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    hash
}

fn fsck(data: &Path, repair: bool) -> (bool, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["fsck", "--data-dir"]).arg(data);
    if repair {
        cmd.arg("--repair");
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn start_up_sweeps_contents_no_record_points_at() {
    let s = Server::start();
    let kept = s.put_ok("kept.txt", b"kept bytes")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (data, _dir) = s.kill();
    let orphan = plant_orphan(&data, b"orphaned by a crash");
    let s = Server::start_at(&data, &[]);
    assert!(!blob_path(&data, &orphan).exists(), "the orphan was kept");
    assert_eq!(s.content(&kept), b"kept bytes");
    assert_eq!(s.stored_blobs(), 1);
}

#[test]
fn fsck_reports_and_repairs_what_is_safe() {
    let s = Server::start();
    let put = |name: &str, body: &[u8]| {
        let v = s.put_ok(name, body);
        (
            v["id"].as_str().unwrap().to_owned(),
            v["hash"].as_str().unwrap().to_owned(),
        )
    };
    let (a, ha) = put("a.txt", b"content of a");
    let (_b, hb) = put("b.txt", b"content of b");
    let (_c, hc) = put("c.txt", b"content of c");
    let (d, hd) = put("d.txt", b"content of d");
    s.wait_tagged();
    let (data, _dir) = s.kill();

    let orphan = plant_orphan(&data, b"no record");
    std::fs::remove_file(blob_path(&data, &hb)).unwrap();
    std::fs::write(blob_path(&data, &hc), b"content of X").unwrap();
    // a counts one reference too many (a later delete would leave its row behind); d one too
    // few (a delete of another record would take bytes a record still points at).
    stopped_sql(
        &data,
        &format!("UPDATE blobs SET refs = 2 WHERE hash = '{ha}'"),
    );
    stopped_sql(
        &data,
        &format!(
            "INSERT INTO files (id, name, name_lower, folder, hash, size, created, modified)
             SELECT 'second-d', 'd2.txt', 'd2.txt', folder, hash, size, created, modified FROM files WHERE id = '{d}'"
        ),
    );

    let (ok, out) = fsck(&data, false);
    assert!(!ok, "{out}");
    for line in [
        format!("orphan {orphan}"),
        format!("missing {hb}"),
        format!("corrupt {hc}"),
        format!("refcount {ha}: 2 counted, 1 records"),
        format!("refcount {hd}: 1 counted, 2 records"),
        "fsck: 1 orphans, 2 refcount drifts, 1 missing, 1 corrupt".to_string(),
        "run with --repair".to_string(),
    ] {
        assert!(out.contains(&line), "no {line:?} in:\n{out}");
    }
    assert!(
        blob_path(&data, &orphan).exists(),
        "a report changed nothing"
    );

    let (ok, out) = fsck(&data, true);
    assert!(!ok, "missing and corrupt contents remain: {out}");
    assert!(out.contains("cannot be repaired"), "{out}");
    assert!(!blob_path(&data, &orphan).exists());
    let (_, out) = fsck(&data, false);
    assert!(
        out.contains("fsck: 0 orphans, 0 refcount drifts, 1 missing, 1 corrupt"),
        "{out}"
    );

    // The repaired counts hold: deleting one of d's records keeps the bytes the other needs;
    // deleting a removes its content.
    let s = Server::start_at(&data, &[]);
    let http = s.http();
    let del = |id: &str| {
        let r = http
            .delete(format!("{}/api/files/{id}", s.url))
            .send()
            .unwrap();
        assert_eq!(r.status(), 204);
    };
    del(&d);
    assert_eq!(s.content("second-d"), b"content of d");
    del(&a);
    assert!(!blob_path(&data, &ha).exists());
}
