//! WebDAV at /dav/ against the real server: the layout (files/ by folder, tags/A/B/ = A AND B,
//! query/EXPR/, recent/), the write semantics of each directory, Range reads, locks, names
//! (duplicates, tags with `/`), the upload limit and the Host allow-list.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;
use reqwest::Method;
use reqwest::blocking::{RequestBuilder, Response};

fn m(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).unwrap()
}

fn dav(s: &Server, method: &str, path: &str) -> RequestBuilder {
    s.http().request(m(method), format!("{}/dav{path}", s.url))
}

/// The decoded hrefs of a PROPFIND (depth 1) of `path`, relative to it, sorted; the directory
/// itself left out. The directory's JSON listing (what `disgrafs mount` reads) names the same
/// entries.
fn ls(s: &Server, path: &str) -> Vec<String> {
    let r = dav(s, "PROPFIND", path)
        .header("Depth", "1")
        .send()
        .unwrap();
    assert_eq!(r.status(), 207, "PROPFIND {path}");
    let listed = hrefs(r, path);
    assert_eq!(json_ls(s, path), listed, "the JSON listing of {path}");
    listed
}

/// The JSON listing of the directory `path`: names, a directory's with a trailing `/`, sorted.
fn json_ls(s: &Server, path: &str) -> Vec<String> {
    let r = dav(s, "GET", path)
        .header("Accept", disgrafs_core::api::DIR_LISTING_TYPE)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "the JSON listing of {path}");
    let entries: Vec<disgrafs_core::api::DirEntry> = r.json().unwrap();
    let mut names: Vec<String> = entries
        .into_iter()
        .map(|e| {
            if e.dir {
                format!("{}/", e.name)
            } else {
                e.name
            }
        })
        .collect();
    names.sort();
    names
}

fn hrefs(r: Response, path: &str) -> Vec<String> {
    let body = r.text().unwrap();
    let base = percent_encoding::percent_decode_str(&format!("/dav{path}"))
        .decode_utf8()
        .unwrap()
        .into_owned();
    let mut out: Vec<String> = body
        .split("href>")
        .skip(1)
        .step_by(2)
        .filter_map(|h| h.split('<').next())
        .map(|h| {
            percent_encoding::percent_decode_str(h)
                .decode_utf8()
                .unwrap()
                .into_owned()
        })
        .filter_map(|h| h.strip_prefix(&base).map(str::to_owned))
        .filter(|h| !h.is_empty())
        .collect();
    out.sort();
    out
}

fn upload(s: &Server, path: &str, body: &[u8]) -> serde_json::Value {
    let r = s.post_part(path, body);
    assert_eq!(r.status(), 201);
    r.json::<serde_json::Value>().unwrap()["files"][0].clone()
}

fn get(s: &Server, path: &str) -> (u16, Vec<u8>) {
    let r = dav(s, "GET", path).send().unwrap();
    (r.status().as_u16(), r.bytes().unwrap().to_vec())
}

fn tags_of(s: &Server, id: &str) -> Vec<String> {
    let mut t: Vec<String> = s.get_json(&format!("/api/files/{id}"))["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    t.sort();
    t
}

#[test]
fn layout() {
    let s = Server::start_with(&["--workers", "0"]);
    let a = upload(&s, "Project/docs/README.md", b"docs readme\n");
    let b = upload(&s, "Project/README.md", b"top readme\n");
    s.tag(a["id"].as_str().unwrap(), &["draft", "c/c++"]);
    s.tag(b["id"].as_str().unwrap(), &["release"]);

    assert_eq!(ls(&s, "/"), ["files/", "query/", "recent/", "tags/"]);
    assert_eq!(ls(&s, "/files/"), ["Project/"]);
    assert_eq!(ls(&s, "/files/Project/"), ["README.md", "docs/"]);
    assert_eq!(ls(&s, "/files/Project/docs/"), ["README.md"]);
    assert_eq!(
        get(&s, "/files/Project/docs/README.md"),
        (200, b"docs readme\n".to_vec())
    );

    let tags = ls(&s, "/tags/");
    for t in ["project/", "docs/", "draft/", "release/", "c%2Fc++/"] {
        assert!(tags.contains(&t.to_string()), "{t} in {tags:?}");
    }
    assert_eq!(ls(&s, "/tags/project/"), ["README (2).md", "README.md"]);
    assert_eq!(ls(&s, "/tags/project/docs/"), ["README.md"], "nested = AND");
    // A tag with '/' is one escaped segment (its '%' is itself encoded in the URL).
    assert_eq!(ls(&s, "/tags/c%252Fc++/"), ["README.md"]);
    assert_eq!(get(&s, "/tags/project/docs/README.md").1, b"docs readme\n");
    assert_eq!(ls(&s, "/query/project%20AND%20NOT%20draft/"), ["README.md"]);
    assert_eq!(
        get(&s, "/query/project%20AND%20NOT%20draft/README.md").1,
        b"top readme\n"
    );
    assert_eq!(ls(&s, "/recent/").len(), 2);
    assert_eq!(
        dav(&s, "PROPFIND", "/query/(((/")
            .header("Depth", "1")
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(get(&s, "/files/nope.txt").0, 404);

    // The JSON listing: sizes and dates as the records have them; a file or a missing
    // directory is a JSON 404.
    let r = dav(&s, "GET", "/files/Project/docs/")
        .header("Accept", "text/html, application/json;q=0.9")
        .send()
        .unwrap();
    let entries: Vec<disgrafs_core::api::DirEntry> = r.json().unwrap();
    let rec = s.get_json(&format!("/api/files/{}", a["id"].as_str().unwrap()));
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].size, rec["size"].as_u64().unwrap());
    assert!(entries[0].modified() > std::time::SystemTime::UNIX_EPOCH);
    for path in ["/files/Project/README.md/", "/files/nope/", "/query/(((/"] {
        let r = dav(&s, "GET", path)
            .header("Accept", disgrafs_core::api::DIR_LISTING_TYPE)
            .send()
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(r.json::<serde_json::Value>().unwrap()["code"], "not_found");
    }
}

#[test]
fn duplicate_and_unsafe_names() {
    let s = Server::start_with(&["--workers", "0"]);
    let first = upload(&s, "dup/r.txt", b"one");
    upload(&s, "dup/r.txt", b"two");
    upload(&s, "dup/a:b?.txt", b"odd");
    let listing = ls(&s, "/files/dup/");
    assert_eq!(listing, ["a\u{F03A}b\u{F03F}.txt", "r (2).txt", "r.txt"]);
    assert_eq!(ls(&s, "/files/dup/"), listing, "stable across listings");
    assert_eq!(get(&s, "/files/dup/r.txt").1, b"one");
    assert_eq!(get(&s, "/files/dup/r%20(2).txt").1, b"two");
    assert_eq!(get(&s, "/files/dup/a%EF%80%BAb%EF%80%BF.txt").1, b"odd");
    // A newer file of the same name does not rename the older ones.
    upload(&s, "dup/r.txt", b"three");
    assert_eq!(get(&s, "/files/dup/r%20(2).txt").1, b"two");
    assert_eq!(get(&s, "/files/dup/r%20(3).txt").1, b"three");
    // Mapped names are mapped back on the way in.
    let r = dav(&s, "PUT", "/files/dup/q%EF%80%BF.txt")
        .body("q")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(s.names("name:q"), ["q?.txt"]);
    assert_eq!(first["name"], "r.txt");
}

#[test]
fn ranges() {
    let s = Server::start_with(&["--workers", "0"]);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    upload(&s, "big/data.bin", &data);
    let r = dav(&s, "GET", "/files/big/data.bin")
        .header("Range", "bytes=100000-100099")
        .send()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        "bytes 100000-100099/300000"
    );
    assert_eq!(r.bytes().unwrap(), &data[100_000..100_100]);
    let r = dav(&s, "GET", "/files/big/data.bin")
        .header("Range", "bytes=-10")
        .send()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().unwrap(), &data[data.len() - 10..]);
    let (status, body) = get(&s, "/files/big/data.bin");
    assert_eq!((status, body.len()), (200, data.len()));
    assert!(body == data);
    // A stored file read through WebDAV gets the download's policy.
    let r = dav(&s, "GET", "/files/big/data.bin").send().unwrap();
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
}

#[test]
fn writes() {
    let s = Server::start_with(&["--workers", "0", "--max-upload", "64KiB"]);
    // PUT into a tag directory uploads the file with the tags.
    let r = dav(&s, "PUT", "/tags/inbox/urgent/note.txt")
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16() / 100, 2, "{}", r.status());
    let files = s.get_json("/api/files?q=inbox")["files"].clone();
    let id = files[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(tags_of(&s, &id), ["inbox", "urgent"]);
    assert_eq!(s.content(&id), b"hello");

    // DELETE from a tag directory removes the (innermost) tag, not the file.
    let r = dav(&s, "DELETE", "/tags/inbox/urgent/note.txt")
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(tags_of(&s, &id), ["inbox"]);

    // MOVE between tag directories retags.
    let r = dav(&s, "MOVE", "/tags/inbox/note.txt")
        .header("Destination", format!("{}/dav/tags/done/note.txt", s.url))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16() / 100, 2, "{}", r.status());
    assert_eq!(tags_of(&s, &id), ["done"]);

    // MKCOL makes a folder; PUT into it keeps the folder; MOVE renames.
    assert_eq!(
        dav(&s, "MKCOL", "/files/work/").send().unwrap().status(),
        201
    );
    assert_eq!(
        dav(&s, "MKCOL", "/files/work/").send().unwrap().status(),
        405
    );
    assert_eq!(
        dav(&s, "MKCOL", "/files/no/such/").send().unwrap().status(),
        409
    );
    assert_eq!(ls(&s, "/files/"), ["note.txt", "work/"]);
    let r = dav(&s, "PUT", "/files/work/plan.md")
        .body("# plan\n")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let plan = s.get_json("/api/files?q=name:plan")["files"][0].clone();
    assert_eq!(plan["folder"], "work");
    assert_eq!(tags_of(&s, plan["id"].as_str().unwrap()), ["work"]);
    let r = dav(&s, "MOVE", "/files/work/plan.md")
        .header(
            "Destination",
            format!("{}/dav/files/work/plan-v2.md", s.url),
        )
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16() / 100, 2);
    assert_eq!(ls(&s, "/files/work/"), ["plan-v2.md"]);
    // PUT over an existing name replaces its content.
    let r = dav(&s, "PUT", "/files/work/plan-v2.md")
        .body("# plan 2\n")
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(&s, "/files/work/plan-v2.md").1, b"# plan 2\n");
    assert_eq!(ls(&s, "/files/work/"), ["plan-v2.md"]);
    // COPY makes a second record of the same content.
    let r = dav(&s, "COPY", "/files/work/plan-v2.md")
        .header("Destination", format!("{}/dav/files/copy.md", s.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(get(&s, "/files/copy.md").1, b"# plan 2\n");

    // DELETE in files/ deletes the file (and a folder, with its files).
    assert_eq!(
        dav(&s, "DELETE", "/files/note.txt")
            .send()
            .unwrap()
            .status(),
        204
    );
    assert!(
        s.get_json("/api/files?q=done")["files"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        dav(&s, "DELETE", "/files/work/").send().unwrap().status(),
        204
    );
    assert_eq!(ls(&s, "/files/"), ["copy.md"]);
    assert_eq!(s.get_json("/api/health")["files"], 1);

    // Read-only directories refuse writes.
    let r = dav(&s, "PUT", "/recent/x.txt").body("x").send().unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = dav(&s, "PUT", "/query/copy/x.txt")
        .body("x")
        .send()
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());

    // The upload limit holds, and a refused PUT stores nothing.
    let r = dav(&s, "PUT", "/files/big.bin")
        .body(vec![7u8; 100 << 10])
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(s.get_json("/api/health")["files"], 1);
    // A hostile name is refused.
    let r = dav(&s, "PUT", "/files/%2E%2E").body("x").send().unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert_eq!(s.get_json("/api/health")["files"], 1);
}

#[test]
fn locks() {
    let s = Server::start_with(&["--workers", "0"]);
    upload(&s, "l/file.txt", b"v1");
    let body = r#"<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>
<D:locktype><D:write/></D:locktype><D:owner>test</D:owner></D:lockinfo>"#;
    let r = dav(&s, "LOCK", "/files/l/file.txt")
        .header("Timeout", "Second-60")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = r.headers()["lock-token"].to_str().unwrap().to_owned();
    assert!(r.text().unwrap().contains("Second-60"));
    let r = dav(&s, "PUT", "/files/l/file.txt")
        .body("v2")
        .send()
        .unwrap();
    assert_eq!(r.status(), 423, "locked");
    let r = dav(&s, "PUT", "/files/l/file.txt")
        .header("If", format!("({token})"))
        .body("v2")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16() / 100, 2, "{}", r.status());
    let r = dav(&s, "UNLOCK", "/files/l/file.txt")
        .header("Lock-Token", &token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = dav(&s, "PUT", "/files/l/file.txt")
        .body("v3")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16() / 100, 2);
    let r = dav(&s, "OPTIONS", "/files/").send().unwrap();
    assert!(
        r.headers()["dav"].to_str().unwrap().contains('2'),
        "class 2"
    );
}

#[test]
fn host_allow_list_covers_dav() {
    let s = Server::start_with(&["--workers", "0"]);
    let r = dav(&s, "PROPFIND", "/files/")
        .header("Host", "evil.example")
        .header("Depth", "1")
        .send()
        .unwrap();
    assert_eq!(r.status(), 421);
    let r = dav(&s, "PUT", "/files/x.txt")
        .header("Origin", "http://evil.example")
        .body("x")
        .send()
        .unwrap();
    assert_eq!(r.status(), 403, "a page of another site cannot write");
    assert_eq!(s.get_json("/api/health")["files"], 0);
}

/// A change made through WebDAV is an event like any other (a mount of another client drops its
/// cache on it): a MOVE between tag directories, and a rename in files/.
#[test]
fn moves_and_retags_are_announced() {
    let s = Server::start_with(&["--workers", "0"]);
    let id = upload(&s, "m.txt", b"moved\n")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.tag(&id, &["red"]);
    let mut stream = events(&s);
    let mut next_event_of = |id: &str| {
        (stream.by_ref())
            .find(|(_, data)| event_file(data) == id)
            .expect("the event stream ended")
            .0
    };
    let dest = format!("{}/dav/tags/blue/m.txt", s.url);
    let r = dav(&s, "MOVE", "/tags/red/m.txt")
        .header("Destination", &dest)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(next_event_of(&id), "file.updated", "the retag");
    let dest = format!("{}/dav/files/n.txt", s.url);
    let r = dav(&s, "MOVE", "/files/m.txt")
        .header("Destination", &dest)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(next_event_of(&id), "file.updated", "the rename");
    assert_eq!(tags_of(&s, &id), ["blue"]);
}
