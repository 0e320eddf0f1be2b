//! Files keep the relative folder they were uploaded from: `disgrafs put DIR`, multipart
//! filenames that are paths (a page's folder upload), tus `relativePath` metadata and raw PUT's
//! `folder`; each folder is a user tag that re-tagging keeps; hostile paths are refused with the
//! one-line JSON error.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use base64::Engine;
use common::*;

fn user_tags(rec: &serde_json::Value) -> Vec<String> {
    let mut t: Vec<String> = rec["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "user")
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    t.sort();
    t
}

fn all_files(s: &Server) -> Vec<serde_json::Value> {
    s.get_json("/api/files?limit=1000&sort=name")["files"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn put_dir_keeps_folders_and_tags_them() {
    let s = Server::start();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("Project");
    std::fs::create_dir_all(tree.join("docs/api")).unwrap();
    std::fs::write(tree.join("README.md"), b"top readme\n").unwrap();
    std::fs::write(tree.join("docs/api/README.md"), b"api readme\n").unwrap();
    let out = s
        .cmd()
        .arg("put")
        .arg(&tree)
        .env("XDG_STATE_HOME", work.path().join("state"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = all_files(&s);
    let mut seen: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            (
                f["folder"].as_str().unwrap().to_owned(),
                f["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("Project".to_string(), "README.md".to_string()),
            ("Project/docs/api".to_string(), "README.md".to_string())
        ],
        "two README.md told apart by their folders"
    );
    let deep = files
        .iter()
        .find(|f| f["folder"] == "Project/docs/api")
        .unwrap();
    assert_eq!(user_tags(deep), ["api", "docs", "project"]);
    assert_eq!(s.names("docs AND api"), ["README.md"]);

    // Re-tagging replaces automatic tags only.
    s.wait_tagged();
    let r = s
        .http()
        .post(format!("{}/api/retag?all=true", s.url))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    s.wait_tagged();
    let again = s.get_json(&format!("/api/files/{}", deep["id"].as_str().unwrap()));
    assert_eq!(user_tags(&again), ["api", "docs", "project"]);
    assert_eq!(again["folder"], "Project/docs/api");
}

#[test]
fn every_upload_path_takes_a_folder() {
    let s = Server::start();
    // Multipart: the filename is the relative path (what a browser's folder upload sends).
    let r = s.post_part("photos/2024/a.txt", b"multi");
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["files"][0]["folder"], "photos/2024");
    assert_eq!(v["files"][0]["name"], "a.txt");

    // Raw PUT: `folder`.
    let r = s
        .http()
        .put(format!("{}/api/files", s.url))
        .query(&[("name", "b.txt"), ("folder", "notes/old")])
        .body("raw")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(
        (v["folder"].as_str(), v["name"].as_str()),
        (Some("notes/old"), Some("b.txt"))
    );
    assert_eq!(user_tags(&v), ["notes", "old"]);

    // tus: `relativePath`, as tus-js-client sends it from the page.
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let r = s
        .http()
        .post(format!("{}/api/uploads/", s.url))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", 3)
        .header(
            "Upload-Metadata",
            format!(
                "filename {},relativePath {}",
                b64("c.txt"),
                b64("music/c.txt")
            ),
        )
        .header("Content-Type", "application/offset+octet-stream")
        .body("tus")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.headers()["disgrafs-file-id"].to_str().unwrap().to_owned();
    let v = s.get_json(&format!("/api/files/{id}"));
    assert_eq!(v["folder"], "music");
    assert_eq!(user_tags(&v), ["music"]);

    // A file alone has no folder.
    assert_eq!(s.put_ok("alone.txt", b"x")["folder"], "");
}

#[test]
fn hostile_folders_are_refused() {
    let s = Server::start();
    let long = vec!["f"; 40].join("/");
    let wide = vec!["w".repeat(250); 5].join("/");
    for folder in [
        "../up",
        "a/../../b",
        "/etc",
        "a//b",
        "a/",
        "a\\b",
        "nul\0byte",
        "esc\u{1b}[2J",
        "rtl\u{202E}txt",
        long.as_str(),
        wide.as_str(),
    ] {
        let r = s
            .http()
            .put(format!("{}/api/files", s.url))
            .query(&[("name", "x.txt"), ("folder", folder)])
            .body("x")
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let v: serde_json::Value = r.json().unwrap();
        assert_eq!(status, 422, "{folder:?}: {v}");
        let msg = v["error"].as_str().unwrap();
        assert!(!msg.is_empty() && !msg.contains('\n'), "{folder:?}: {v}");
        assert_eq!(v["code"], "invalid");
    }
    for path in ["/abs/x.txt", "../x.txt", "a/../../x.txt", "a/\u{7}/x.txt"] {
        let r = s.post_part(path, b"x");
        // A control character in a part's header is malformed HTTP already (400).
        let status = r.status().as_u16();
        assert!(status == 422 || status == 400, "{path:?}: {status}");
        let v: serde_json::Value = r.json().unwrap();
        assert!(
            !v["error"].as_str().unwrap_or("").is_empty(),
            "{path:?}: {v}"
        );
    }
    let meta = format!(
        "filename {},relativePath {}",
        base64::engine::general_purpose::STANDARD.encode("x.txt"),
        base64::engine::general_purpose::STANDARD.encode("../../x.txt")
    );
    let r = s
        .http()
        .post(format!("{}/api/uploads/", s.url))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", 1)
        .header("Upload-Metadata", meta)
        .send()
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(s.get_json("/api/health")["files"], 0);
}
