//! The tagging queue is persistent: jobs queued by one run are done by the next.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;

#[test]
fn queued_jobs_survive_a_crash_and_finish_after_restart() {
    // No workers: uploads queue their tagging and nothing runs it.
    let s = Server::start_with(&["--workers", "0"]);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            s.put_ok(
                &format!("doc{i}.txt"),
                format!("text number {i}\n").as_bytes(),
            )["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let h = s.get_json("/api/health");
    assert_eq!(h["jobs_queued"], 5, "{h}");
    assert_eq!(
        s.get_json(&format!("/api/files/{}", ids[0]))["tagging"],
        "pending"
    );
    // The upload did not wait for tagging, and a crash loses no job.
    let (data, _keep) = s.kill();
    let s = Server::start_at(&data, &["--workers", "2"]);
    s.wait_tagged();
    for id in &ids {
        let f = s.get_json(&format!("/api/files/{id}"));
        assert_eq!(f["tagging"], "done", "{f}");
        assert!(
            f["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["kind"] == "auto"),
            "{f}"
        );
    }
    assert_eq!(s.get_json("/api/health")["jobs_failed"], 0);
}

#[test]
fn retag_requeues_without_touching_user_tags() {
    let s = Server::start();
    let id = s.put_ok("a.txt", b"some words\n")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.tag(&id, &["mine"]);
    s.wait_tagged();
    let r = s
        .http()
        .post(format!("{}/api/retag?all=true", s.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<serde_json::Value>().unwrap()["queued"], 1);
    s.wait_tagged();
    let f = s.get_json(&format!("/api/files/{id}"));
    assert_eq!(f["tagging"], "done");
    assert!(
        f["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "mine" && t["kind"] == "user"),
        "{f}"
    );
    // Nothing is outdated now: a plain retag queues nothing.
    let r: serde_json::Value = s
        .http()
        .post(format!("{}/api/retag", s.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["queued"], 0);
}

#[test]
fn tags_belong_to_content() {
    let s = Server::start();
    let a = s.put_ok("first.txt", b"same words\n")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.wait_tagged();
    // A re-upload of the same bytes under another name has the automatic tags at once.
    let b = s.put_ok("second.md", b"same words\n");
    assert_eq!(b["tagging"], "done", "{b}");
    let auto = |f: &serde_json::Value| -> Vec<String> {
        f["tags"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["kind"] == "auto")
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(auto(&b).contains(&"document".to_string()), "{b}");
    // Every automatic tag of the re-upload is the first upload's: they belong to the content.
    // The one exception is the extension tag, which comes from the name (`md` here, `txt` there).
    let first = auto(&s.get_json(&format!("/api/files/{a}")));
    let second = auto(&b);
    let from_content: Vec<&String> = second.iter().filter(|t| t.as_str() != "md").collect();
    assert!(!from_content.is_empty(), "{b}");
    for t in from_content {
        assert!(
            first.contains(t),
            "{t} is on the re-upload but not on the first upload"
        );
    }
}

#[test]
fn uploads_tag_themselves_from_their_content() {
    let s = Server::start();
    let text = "The Rust compiler checks ownership and borrowing. Rust programs manage memory without a \
                garbage collector: the borrow checker proves references valid. Ownership rules make Rust \
                code safe, and the Rust compiler explains each ownership error.\n";
    let id = s.put_ok("notes.txt", text.repeat(3).as_bytes())["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.wait_tagged();
    let f = s.get_json(&format!("/api/files/{id}"));
    let auto: Vec<&str> = f["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "auto")
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(auto.contains(&"rust"), "{auto:?}");
    assert!(auto.contains(&"english"), "{auto:?}");
    assert_eq!(f["fields"]["language"], "eng", "{f}");
    // The keyword is a node of the graph and finds the file.
    assert_eq!(s.names("rust AND english"), ["notes.txt"]);
}
