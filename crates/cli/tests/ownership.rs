//! Ownership from outside (issue 15.2): two users with write tokens; bob sees none of alice's
//! files, names, tags or counts in listings, search, the graph, autocomplete, health and WebDAV,
//! cannot download, delete or retag them (404), reads (only) what alice shares with a group he
//! is in; the admin sees everything.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;
use std::process::Command;

/// A write token of a new user `name`.
fn user_token(s: &Server, name: &str) -> String {
    disgrafs_admin(
        s,
        &["token", "--create", "--scope", "write", "--user", name],
    )
}

fn disgrafs_admin(s: &Server, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("admin")
        .args(args)
        .arg("--data-dir")
        .arg(&s.data)
        .env_remove("DISGRAFS_META")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn text(c: &reqwest::blocking::Client, url: &str) -> (u16, String) {
    let r = c.get(url).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

#[test]
fn users_see_and_change_only_their_own_files_and_read_shared_ones() {
    let s = Server::start_with(&["--workers", "0"]);
    let (alice, bob) = (
        http_with(Some(&user_token(&s, "alice"))),
        http_with(Some(&user_token(&s, "bob"))),
    );
    let put = |c: &reqwest::blocking::Client, name: &str, folder: &str, body: &str| {
        let r = c
            .put(format!("{}/api/files?name={name}&folder={folder}", s.url))
            .body(body.to_owned())
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        r.json::<serde_json::Value>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let secret = put(&alice, "secret-plan.md", "Vault", "zebra launch codes");
    let notes = put(&bob, "notes.md", "", "a shopping list");
    let tag = |c: &reqwest::blocking::Client, id: &str, t: &str| {
        c.post(format!("{}/api/files/{id}/tags", s.url))
            .json(&serde_json::json!({ "tags": [t] }))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(tag(&alice, &secret, "classified"), 200);
    assert_eq!(tag(&bob, &notes, "common"), 200);

    // Nothing of alice's in what bob reads.
    for path in [
        "/api/files",
        "/api/files?q=secret",
        "/api/files?q=tag:classified",
        "/api/graph",
        "/api/tags",
        "/api/tags?prefix=cla",
        "/api/tags/cooccurrence",
        &format!("/api/files/{notes}/related"),
    ] {
        let (status, body) = text(&bob, &format!("{}{path}", s.url));
        assert_eq!(status, 200, "{path}: {body}");
        for leak in ["secret-plan", "classified", "vault", secret.as_str()] {
            assert!(
                !body.to_lowercase().contains(leak),
                "{path} tells {leak}: {body}"
            );
        }
    }
    let files = text(&bob, &format!("{}/api/files", s.url)).1;
    assert!(files.contains("notes.md"), "{files}");
    let health: serde_json::Value = bob
        .get(format!("{}/api/health", s.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["files"], 1, "{health}");

    // Alice's file is not there for bob: reading or changing it is 404.
    let id_url = format!("{}/api/files/{secret}", s.url);
    for (what, status) in [
        ("record", bob.get(&id_url).send().unwrap().status()),
        (
            "content",
            bob.get(format!("{id_url}/content"))
                .send()
                .unwrap()
                .status(),
        ),
        ("delete", bob.delete(&id_url).send().unwrap().status()),
    ] {
        assert_eq!(status.as_u16(), 404, "{what}");
    }
    assert_eq!(tag(&bob, &secret, "mine"), 404);
    let share = |c: &reqwest::blocking::Client, group: Option<&str>| {
        c.put(format!("{id_url}/group"))
            .json(&serde_json::json!({ "group": group }))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(share(&bob, None), 404);

    // WebDAV: bob's listing has no alice's folder or file, and her file's path is not found.
    let propfind = |path: &str| {
        bob.request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            format!("{}{path}", s.url),
        )
        .header("Depth", "1")
        .send()
        .unwrap()
    };
    let root = propfind("/dav/files/").text().unwrap();
    assert!(
        !root.contains("Vault") && !root.contains("secret-plan"),
        "{root}"
    );
    let r = bob
        .get(format!("{}/dav/files/Vault/secret-plan.md", s.url))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // Shared with a group bob is in: he reads it, and still cannot change it.
    disgrafs_admin(&s, &["group", "team", "--create", "--add", "bob"]);
    // An unknown group is a bad body (422); the file itself is there.
    assert_eq!(share(&alice, Some("nobody")), 422);
    assert_eq!(share(&alice, Some("team")), 200);
    let (status, body) = text(&bob, &format!("{id_url}/content"));
    assert_eq!((status, body.as_str()), (200, "zebra launch codes"));
    assert!(
        text(&bob, &format!("{}/api/tags", s.url))
            .1
            .contains("classified")
    );
    assert_eq!(bob.delete(&id_url).send().unwrap().status().as_u16(), 404);
    assert_eq!(tag(&bob, &secret, "mine"), 404);

    // The admin sees everything.
    let all: serde_json::Value = s.get_json("/api/files");
    assert_eq!(all["total"], 2, "{all}");
    assert_eq!(alice.delete(&id_url).send().unwrap().status().as_u16(), 204);
}
