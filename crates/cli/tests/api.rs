//! The API's description and its live events.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;

#[test]
fn openapi_document_describes_the_api() {
    let s = Server::start();
    let doc = s.get_json("/api/openapi.json");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/health",
        "/api/files",
        "/api/files/{id}",
        "/api/files/{id}/content",
        "/api/files/{id}/tags",
        "/api/files/{id}/related",
        "/api/graph",
        "/api/uploads/",
        "/api/uploads/{id}",
        "/api/events",
    ] {
        assert!(paths.contains_key(p), "missing {p}");
    }
    assert!(paths["/api/files"]["put"].is_object() && paths["/api/files"]["post"].is_object());
    assert!(doc["components"]["schemas"]["FileRecord"].is_object());
    let h = s.get_json("/api/health");
    assert_eq!(h["status"], "ok");
}

#[test]
fn events_announce_uploads_and_tagging() {
    let s = Server::start();
    let mut stream = events(&s);
    let id = s.put_ok("live.txt", b"live words\n")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut seen = Vec::new();
    for (event, data) in &mut stream {
        if event_file(&data) == id {
            seen.push(event.clone());
        }
        if event == "file.tagged" {
            break;
        }
    }
    assert_eq!(seen, ["file.created", "file.tagged"]);
}

/// An event names the file by id, however many tags it has: a file with 10,000 tags is announced
/// in a few dozen bytes (the server's buffer for a subscriber that never reads is a bounded
/// number of these), and the record is fetched by id.
#[test]
fn events_carry_ids_not_records() {
    let s = Server::start();
    let id = s.put_ok("wide.txt", b"wide")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A subscriber that never reads, and one that does.
    let _idle = s
        .http()
        .get(format!("{}/api/events", s.url))
        .send()
        .unwrap();
    let mut stream = events(&s);
    for chunk in 0..10 {
        let tags: Vec<String> = (0..1000).map(|i| format!("t{chunk}-{i}")).collect();
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        s.tag(&id, &tags);
    }
    let mut updates = 0;
    while updates < 10 {
        let (event, d) = stream.next().expect("the event stream ended");
        assert!(d.len() <= 64, "{event}: {} bytes", d.len());
        let v: serde_json::Value = serde_json::from_str(&d).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1, "{d}");
        if event == "file.updated" && event_file(&d) == id {
            updates += 1;
        }
    }
    let rec = s.get_json(&format!("/api/files/{id}"));
    assert!(rec["tags"].as_array().unwrap().len() >= 10_000);
}
