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
    // Bob may make the folder of alice's name (as if it were new), work in it, and remove it:
    // alice's file and folder stay, and none of bob's answers told of them.
    let dav = |m: &str, path: &str| {
        bob.request(
            reqwest::Method::from_bytes(m.as_bytes()).unwrap(),
            format!("{}/dav/files/{path}", s.url),
        )
        .body(if m == "PUT" { "bob's" } else { "" })
        .send()
        .unwrap()
        .status()
        .as_u16()
    };
    assert_eq!(dav("MKCOL", "Vault/"), 201);
    assert_eq!(dav("MKCOL", "Vault/"), 405, "bob's now");
    assert_eq!(dav("PUT", "Vault/mine.txt"), 201);
    let listing = propfind("/dav/files/Vault/").text().unwrap();
    assert!(
        listing.contains("mine.txt") && !listing.contains("secret-plan"),
        "{listing}"
    );
    assert_eq!(dav("DELETE", "Vault/"), 204);
    assert_eq!(propfind("/dav/files/Vault/").status().as_u16(), 404);
    let r = alice
        .get(format!("{}/dav/files/Vault/secret-plan.md", s.url))
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "zebra launch codes");

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

    // A tus upload is its starter's: another user can neither see, resume nor cancel it.
    let r = alice
        .post(format!("{}/api/uploads", s.url))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "5")
        .header("Upload-Metadata", "filename dXAuYmlu")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let upload = format!("{}{}", s.url, r.headers()["location"].to_str().unwrap());
    let tus = |c: &reqwest::blocking::Client, m: &str| {
        let mut req = c
            .request(reqwest::Method::from_bytes(m.as_bytes()).unwrap(), &upload)
            .header("Tus-Resumable", "1.0.0");
        if m == "PATCH" {
            req = req
                .header("Upload-Offset", "0")
                .header("Content-Type", "application/offset+octet-stream")
                .body("hello");
        }
        req.send().unwrap().status().as_u16()
    };
    for m in ["HEAD", "PATCH", "DELETE"] {
        assert_eq!(tus(&bob, m), 404, "bob's {m}");
    }
    assert_eq!(tus(&alice, "HEAD"), 200);
    assert_eq!(tus(&alice, "PATCH"), 204, "nothing of bob's tries landed");
    assert_eq!(tus(&alice, "DELETE"), 204);

    // The admin sees everything.
    let all: serde_json::Value = s.get_json("/api/files");
    assert_eq!(
        all["total"], 3,
        "{all}: alice's two (one by tus), bob's one"
    );
    assert_eq!(alice.delete(&id_url).send().unwrap().status().as_u16(), 204);
}

/// A read-only token of a new user `name`.
fn read_token(s: &Server, name: &str) -> String {
    disgrafs_admin(s, &["token", "--create", "--scope", "read", "--user", name])
}

/// Share links (issue 15.3): made by a file's owner (or of a query, as its maker sees it), open
/// to anyone who has the link and to no other file, optionally behind a password (the page's
/// form, JSON, or Basic), gone when revoked, expired, or its file deleted.
#[test]
fn share_links_open_their_files_to_anyone_with_the_link_and_nothing_else() {
    let s = Server::start_with(&["--workers", "0"]);
    let (alice_token, bob_token) = (user_token(&s, "alice"), user_token(&s, "bob"));
    let (alice, bob) = (http_with(Some(&alice_token)), http_with(Some(&bob_token)));
    let anon = s.http_anon();
    let put = |c: &reqwest::blocking::Client, name: &str, body: &str, tag: &str| {
        let r = c
            .put(format!("{}/api/files", s.url))
            .query(&[("name", name)])
            .body(body.to_owned())
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let id = r.json::<serde_json::Value>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = c
            .post(format!("{}/api/files/{id}/tags", s.url))
            .json(&serde_json::json!({ "tags": [tag] }))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        id
    };
    let plan = put(&alice, "a<b>&\"plan\".md", "the launch plan", "launch");
    let other = put(&alice, "diary.md", "dear diary", "private");
    let bobs = put(&bob, "bob-launch.md", "bob's own plan", "launch");
    let make = |c: &reqwest::blocking::Client, body: serde_json::Value| {
        let r = c
            .post(format!("{}/api/shares", s.url))
            .json(&body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().unwrap())
    };
    let get = |c: &reqwest::blocking::Client, path: &str| {
        let r = c.get(format!("{}{path}", s.url)).send().unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.text().unwrap())
    };

    // Made by the file's owner only; exactly one target; a read token cannot make one.
    assert_eq!(make(&bob, serde_json::json!({ "file": plan })).0, 404);
    assert_eq!(make(&alice, serde_json::json!({})).0, 422);
    let both = serde_json::json!({ "file": plan, "query": "launch" });
    assert_eq!(make(&alice, both).0, 422);
    assert_eq!(make(&alice, serde_json::json!({ "query": "(((" })).0, 400);
    let long = serde_json::json!({ "file": plan, "expires_in": 400 * 86_400 });
    assert_eq!(make(&alice, long).0, 422);
    let reader = http_with(Some(&read_token(&s, "alice")));
    assert_eq!(make(&reader, serde_json::json!({ "file": plan })).0, 403);

    // A file's link: the page, the JSON, the download (with Range), without any account.
    let (status, link) = make(&alice, serde_json::json!({ "file": plan }));
    assert_eq!(status, 201, "{link}");
    let url = link["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("/s/dgf_"), "{link}");
    assert_eq!(link["password"], false);
    let (status, headers, page) = get(&anon, &url);
    assert_eq!(status, 200, "{page}");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        page.contains("a&lt;b&gt;&amp;&quot;plan&quot;.md"),
        "escaped: {page}"
    );
    assert!(!page.contains("<b>"), "{page}");
    assert!(page.contains(&format!("{url}/files/{plan}")), "{page}");
    let (status, _, files) = get(&anon, &format!("{url}/files"));
    assert_eq!(status, 200);
    let files: serde_json::Value = serde_json::from_str(&files).unwrap();
    assert_eq!(files["total"], 1);
    assert_eq!(files["files"][0]["tags"], serde_json::json!(["launch"]));
    let (status, _, body) = get(&anon, &format!("{url}/files/{plan}"));
    assert_eq!((status, body.as_str()), (200, "the launch plan"));
    let r = anon
        .get(format!("{}{url}/files/{plan}", s.url))
        .header("Range", "bytes=4-9")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.text().unwrap(), "launch");
    // No other file through it, not even the maker's; the API still needs a credential.
    for id in [&other, &bobs, &"nope".to_string()] {
        assert_eq!(get(&anon, &format!("{url}/files/{id}")).0, 404, "{id}");
    }
    assert_eq!(get(&anon, &format!("/api/files/{plan}")).0, 401);
    for bad in ["/s/dgf_nope", "/s/x", "/s/dgf_nope/files", "/s/a/b/c"] {
        assert_eq!(get(&anon, bad).0, 404, "{bad}");
    }
    // A dot-segment out of /s/ is /api/files: a credential is needed there.
    assert_eq!(get(&anon, "/s/%2e%2e/api/files").0, 401);
    let raw = s.raw_anon(
        format!(
            "GET /s/../api/files HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            s.addr
        )
        .as_bytes(),
        std::time::Duration::from_secs(10),
    );
    assert!(!raw.starts_with("HTTP/1.1 200"), "{raw}");

    // A query's link: the maker's files matching it, as they come and go; not bob's.
    let (status, qlink) = make(&alice, serde_json::json!({ "query": "launch OR private" }));
    assert_eq!(status, 201);
    let qurl = qlink["url"].as_str().unwrap().to_owned();
    let names = || {
        let (status, _, body) = get(&anon, &format!("{qurl}/files"));
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let mut n: Vec<String> = (v["files"].as_array().unwrap().iter())
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(), ["a<b>&\"plan\".md", "diary.md"]);
    assert_eq!(get(&anon, &format!("{qurl}/files/{other}")).0, 200);
    assert_eq!(get(&anon, &format!("{qurl}/files/{bobs}")).0, 404);
    let later = put(&alice, "later.md", "added later", "private");
    assert_eq!(names(), ["a<b>&\"plan\".md", "diary.md", "later.md"]);
    let r = alice
        .delete(format!("{}/api/files/{later}/tags", s.url))
        .json(&serde_json::json!({ "tags": ["private"] }))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        get(&anon, &format!("{qurl}/files/{later}")).0,
        404,
        "untagged"
    );

    // A password: asked for by the page, refused by the JSON, proved by the form (a cookie for
    // the link's path), by JSON, or by Basic.
    let mut cmd = s.cmd();
    cmd.env("DISGRAFS_TOKEN", &alice_token).args([
        "share",
        "make",
        &other,
        "--password-stdin",
        "--json",
    ]);
    let out = output_with_stdin(&mut cmd, "correct horse\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plink: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plink["password"], true);
    let purl = plink["url"].as_str().unwrap().to_owned();
    let (status, _, page) = get(&anon, &purl);
    assert_eq!(status, 401);
    assert!(
        page.contains("type=\"password\"") && !page.contains("diary"),
        "{page}"
    );
    assert_eq!(get(&anon, &format!("{purl}/files")).0, 401);
    assert_eq!(get(&anon, &format!("{purl}/files/{other}")).0, 401);
    let no_redirects = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = |pw: &str| {
        no_redirects
            .post(format!("{}{purl}/unlock", s.url))
            .form(&[("password", pw)])
            .send()
            .unwrap()
    };
    let wrong = form("wrong horse");
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(wrong.text().unwrap().contains("wrong password"));
    let right = form("correct horse");
    assert_eq!(right.status().as_u16(), 303);
    let cookie = right.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains(&format!("Path={purl}")) && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let proof = cookie.split(';').next().unwrap().to_owned();
    let with_cookie = |path: &str| {
        let r = anon
            .get(format!("{}{path}", s.url))
            .header("Cookie", &proof)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let (status, page) = with_cookie(&purl);
    assert_eq!(status, 200);
    assert!(page.contains("diary.md"), "{page}");
    assert_eq!(
        with_cookie(&format!("{purl}/files/{other}")),
        (200, "dear diary".into())
    );
    // The proof of one link opens no other.
    let r = anon
        .get(format!("{}{url}/files/{plan}", s.url))
        .header("Cookie", &proof)
        .send()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "that link needs no password anyway"
    );
    let forged = anon
        .get(format!("{}{purl}/files", s.url))
        .header("Cookie", format!("disgrafs_share={}", "0".repeat(64)))
        .send()
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    let json_unlock = anon
        .post(format!("{}{purl}/unlock", s.url))
        .json(&serde_json::json!({ "password": "correct horse" }))
        .send()
        .unwrap();
    assert_eq!(json_unlock.status().as_u16(), 204);
    let basic = anon
        .get(format!("{}{purl}/files/{other}", s.url))
        .basic_auth("", Some("correct horse"))
        .send()
        .unwrap();
    assert_eq!(basic.status().as_u16(), 200);

    // Listed for their maker only; revoked by their maker (not by another user), at once.
    let listed = |c: &reqwest::blocking::Client| {
        let v: serde_json::Value = c
            .get(format!("{}/api/shares", s.url))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["shares"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    let ids = listed(&alice);
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(listed(&bob).is_empty());
    let out = s
        .cmd()
        .env("DISGRAFS_TOKEN", &alice_token)
        .args(["share", "ls"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("query launch OR private") && text.contains(", password"),
        "{text}"
    );
    let qid = qlink["id"].as_i64().unwrap();
    let revoke = |c: &reqwest::blocking::Client, id: i64| {
        c.delete(format!("{}/api/shares/{id}", s.url))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(revoke(&bob, qid), 404);
    assert_eq!(get(&anon, &format!("{qurl}/files")).0, 200);
    let out = s
        .cmd()
        .env("DISGRAFS_TOKEN", &alice_token)
        .args(["share", "revoke", &qid.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(&anon, &format!("{qurl}/files")).0, 404);
    assert_eq!(get(&anon, &format!("{qurl}/files/{other}")).0, 404);
    assert_eq!(revoke(&alice, qid), 404, "once");

    // Expired: gone (a link of one second, waited out).
    let (status, short) = make(&alice, serde_json::json!({ "file": plan, "expires_in": 1 }));
    assert_eq!(status, 201);
    assert!(short["expires"].as_i64().unwrap() > short["created"].as_i64().unwrap());
    let surl = short["url"].as_str().unwrap().to_owned();
    let mut expired = false;
    for _ in 0..300 {
        if get(&anon, &surl).0 == 404 {
            expired = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(expired, "a one-second link still opens after 30 s");

    // A file's links go with the file.
    assert_eq!(
        alice
            .delete(format!("{}/api/files/{plan}", s.url))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    assert_eq!(get(&anon, &url).0, 404);
    assert_eq!(get(&anon, &format!("{url}/files/{plan}")).0, 404);
}

#[test]
fn a_quota_bounds_what_a_user_stores_on_every_upload_path() {
    let s = Server::start_with(&["--workers", "0"]);
    let alice = http_with(Some(&user_token(&s, "alice")));
    let bob = http_with(Some(&user_token(&s, "bob")));
    assert_eq!(
        disgrafs_admin(&s, &["user", "quota", "alice", "1KiB"]),
        "alice: 0 B used of 1.0 KiB"
    );
    let put = |c: &reqwest::blocking::Client, name: &str, body: reqwest::blocking::Body| {
        let r = c
            .put(format!("{}/api/files?name={name}", s.url))
            .body(body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<serde_json::Value>().unwrap())
    };
    let over = |(status, v): (u16, serde_json::Value)| {
        assert_eq!(status, 507, "{v}");
        assert_eq!(v["code"], "over_quota", "{v}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains("quota") && !msg.contains('\n'), "{msg}");
    };
    let (status, first) = put(&alice, "first.bin", vec![b'a'; 600].into());
    assert_eq!(status, 201, "{first}");
    // Announced over the room: refused before the body; unannounced (chunked): refused once
    // the bytes pass it.
    over(put(&alice, "big.bin", vec![b'b'; 500].into()));
    over(put(
        &alice,
        "chunked.bin",
        reqwest::blocking::Body::new(std::io::Cursor::new(vec![b'c'; 500])),
    ));
    // A multipart upload is all or nothing: its parts together are over.
    let form = reqwest::blocking::multipart::Form::new()
        .part(
            "f",
            reqwest::blocking::multipart::Part::bytes(vec![b'd'; 300]).file_name("d1.bin"),
        )
        .part(
            "f",
            reqwest::blocking::multipart::Part::bytes(vec![b'd'; 300]).file_name("d2.bin"),
        );
    let r = alice
        .post(format!("{}/api/files", s.url))
        .multipart(form)
        .send()
        .unwrap();
    over((r.status().as_u16(), r.json().unwrap()));
    // tus: refused at creation, by the declared length.
    let r = alice
        .post(format!("{}/api/uploads", s.url))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "500")
        .header("Upload-Metadata", "filename dXAuYmlu")
        .send()
        .unwrap();
    over((r.status().as_u16(), r.json().unwrap()));
    // WebDAV: 507 too (dav-server's body is not the JSON shape).
    let r = alice
        .put(format!("{}/dav/files/dav.bin", s.url))
        .body(vec![b'e'; 500])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 507);
    // A copy counts as much as an upload.
    let r = alice
        .request(
            reqwest::Method::from_bytes(b"COPY").unwrap(),
            format!("{}/dav/files/first.bin", s.url),
        )
        .header("Destination", format!("{}/dav/files/again.bin", s.url))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 507);

    // Nothing of the refusals was stored; the user sees where they stand.
    let names = |c: &reqwest::blocking::Client| {
        let v: serde_json::Value = c
            .get(format!("{}/api/files", s.url))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&alice), ["first.bin"]);
    let me: serde_json::Value = alice
        .get(format!("{}/api/auth/me", s.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (me["used"].as_u64(), me["quota"].as_u64()),
        (Some(600), Some(1024))
    );
    // Another user has no limit; a deletion gives the room back.
    let (status, _) = put(&bob, "bobs.bin", vec![b'f'; 4096].into());
    assert_eq!(status, 201);
    let id = first["id"].as_str().unwrap();
    let r = alice
        .delete(format!("{}/api/files/{id}", s.url))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (status, v) = put(&alice, "big.bin", vec![b'b'; 1000].into());
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        disgrafs_admin(&s, &["user", "quota", "alice"]),
        "alice: 1000 B used of 1.0 KiB"
    );
    assert_eq!(
        disgrafs_admin(&s, &["user", "quota", "alice", "none"]),
        "alice: 1000 B used of no limit"
    );
    // The stored contents are exactly those of the records kept (bob's and alice's last).
    assert_eq!(s.stored_blobs(), 2);
}

/// Every name, tag and id of alice's below contains this: bob's answers must not.
const ALICES: &str = "zq-alice-only";

#[test]
fn another_users_token_reaches_nothing_of_theirs_on_any_route() {
    let s = Server::start_with(&["--workers", "0"]);
    let alice = http_with(Some(&user_token(&s, "alice")));
    let bob = http_with(Some(&user_token(&s, "bob")));
    // Bob listens from the start: nothing of alice's may reach his event stream.
    let bobs_events = events_of(&bob, &s);
    let json = |r: reqwest::blocking::RequestBuilder| -> serde_json::Value {
        let r = r.send().unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        r.json().unwrap()
    };
    let file = json(
        alice
            .put(format!(
                "{}/api/files?name={ALICES}.md&folder={ALICES}-folder",
                s.url
            ))
            .body(format!("{ALICES} content")),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tag = format!("{ALICES}-tag");
    json(
        alice
            .post(format!("{}/api/files/{file}/tags", s.url))
            .json(&serde_json::json!({ "tags": [tag] })),
    );
    let share = json(
        alice
            .post(format!("{}/api/shares", s.url))
            .json(&serde_json::json!({ "file": file })),
    );
    let (share_id, link) = (
        share["id"].to_string().trim_matches('"').to_owned(),
        share["url"].as_str().unwrap().to_owned(),
    );
    let r = alice
        .post(format!("{}/api/uploads", s.url))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "10")
        .header("Upload-Metadata", "filename enEtYWxpY2Utb25seS5wYXJ0")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let upload = r.headers()["location"].to_str().unwrap().to_owned();
    let upload_id = upload.rsplit('/').next().unwrap().to_owned();
    let theirs = [file.as_str(), share_id.as_str(), upload_id.as_str()];

    let routes = documented_routes(&s, |path, _| {
        if path.starts_with("/api/shares") {
            share_id.clone()
        } else if path.starts_with("/api/uploads") {
            upload_id.clone()
        } else {
            file.clone()
        }
    });
    let mut probes: Vec<(reqwest::Method, String)> = routes
        .into_iter()
        .filter(|(_, p)| {
            // A link is its own credential; the stream is read below; a logout ends bob's own
            // credential; the credential-taking routes are bob's own business.
            !p.starts_with("/s/") && p != "/api/events" && !p.starts_with("/api/auth/")
        })
        .collect();
    // The same routes asked about alice's names.
    for q in [
        format!("/api/files?q={ALICES}"),
        format!("/api/files?q=tag:{tag}"),
        format!("/api/files?q=text:{ALICES}"),
        format!("/api/graph?q=tag:{tag}"),
        format!("/api/graph?around=f:{file},t:{tag}"),
        format!("/api/tags?prefix={ALICES}"),
        "/api/tags/cooccurrence".to_owned(),
        // SQL-shaped queries and prefixes: values, never SQL.
        "/api/files?q=name:%22x%27%20OR%20%271%27%3D%271%22".to_owned(),
        "/api/files?q=tag:%22%27)%20OR%201%3D1%20--%22".to_owned(),
        "/api/files?q=text:%22%27%20OR%20owner%20IS%20NOT%20NULL%20--%22".to_owned(),
        "/api/tags?prefix=%25%27%20OR%201%3D1%20--".to_owned(),
        "/api/tags?prefix=%25".to_owned(),
        "/api/graph?q=tag:%22%27%20UNION%20SELECT%20name%20FROM%20files%20--%22".to_owned(),
    ] {
        probes.push((reqwest::Method::GET, q));
    }
    for (m, path) in probes {
        let mut req = bob
            .request(m.clone(), format!("{}{path}", s.url))
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", "0");
        req = if m == reqwest::Method::PATCH {
            req.header("Content-Type", "application/offset+octet-stream")
                .body("bob's byte")
        } else if path.ends_with("/tags") {
            req.json(&serde_json::json!({ "tags": [tag, "bobs"] }))
        } else if path.ends_with("/group") {
            req.json(&serde_json::json!({ "group": null }))
        } else if path == "/api/shares" && m == reqwest::Method::POST {
            req.json(&serde_json::json!({ "file": file }))
        } else {
            req
        };
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        let body = r.text().unwrap();
        let what = format!("bob's {m} {path}: {status} {body}");
        assert!(!body.contains(ALICES), "{what}");
        let about_theirs = path.split(['/', '?']).any(|seg| theirs.contains(&seg))
            || (path == "/api/shares" && m == reqwest::Method::POST);
        if about_theirs && !path.starts_with("/api/graph") {
            assert_eq!(status, 404, "{what}");
        }
        if path == "/api/retag" {
            assert_eq!(status, 403, "{what}");
        }
    }
    // WebDAV: no listing names alice's things; her file's paths are not found.
    let propfind = |dir: &str| {
        let r = bob
            .request(
                reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
                format!("{}{dir}", s.url),
            )
            .header("Depth", "1")
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    // The same directories' JSON listings (what a mount reads).
    let json_listing = |dir: &str| {
        let r = bob
            .get(format!("{}{dir}", s.url))
            .header("Accept", disgrafs_core::api::DIR_LISTING_TYPE)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    for dir in ["/dav/files/", "/dav/tags/", "/dav/recent/"] {
        let (status, body) = propfind(dir);
        assert!(!body.contains(ALICES), "PROPFIND {dir}: {status} {body}");
        let (status, body) = json_listing(dir);
        assert!(
            !body.contains(ALICES),
            "JSON listing {dir}: {status} {body}"
        );
    }
    for dir in [
        format!("/dav/files/{ALICES}-folder/"),
        format!("/dav/tags/{tag}/"),
        format!("/dav/query/tag:{tag}/"),
    ] {
        let theirs = json_listing(&dir);
        let never = json_listing(&dir.replace(ALICES, "never-seen"));
        assert_eq!(theirs, never, "JSON listing {dir}");
    }
    // A tag's or a query's directory is its expression (any name is one), so it echoes the name
    // asked: it answers as for a tag no one has, with nothing in it.
    for dir in [
        format!("/dav/tags/{tag}/"),
        format!("/dav/query/tag:{tag}/"),
    ] {
        let (status, body) = propfind(&dir);
        let (never_status, never) = propfind(&dir.replace(ALICES, "never-seen"));
        assert_eq!(status, never_status, "PROPFIND {dir}: {body}");
        let entries = |b: &str| b.matches("<D:response>").count();
        assert_eq!(entries(&body), entries(&never), "PROPFIND {dir}: {body}");
        assert!(entries(&body) <= 1, "PROPFIND {dir}: {body}");
    }
    // Her file's path answers every method as a path no one has.
    const LOCKINFO: &str = r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    const PROPPATCH: &str = r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x"><D:set><D:prop><Z:p>v</Z:p></D:prop></D:set></D:propertyupdate>"#;
    for m in [
        "GET",
        "HEAD",
        "DELETE",
        "PROPPATCH",
        "LOCK",
        "MOVE",
        "COPY",
        "PUT",
    ] {
        let status = |path: &str| {
            let mut req = bob
                .request(
                    reqwest::Method::from_bytes(m.as_bytes()).unwrap(),
                    format!("{}/dav/files/{path}", s.url),
                )
                .header("Destination", format!("{}/dav/files/stolen.md", s.url));
            req = match m {
                "LOCK" => req.body(LOCKINFO),
                "PROPPATCH" => req.body(PROPPATCH),
                "PUT" => req.body("bob's"),
                _ => req,
            };
            req.send().unwrap().status().as_u16()
        };
        let theirs = status(&format!("{ALICES}-folder/{ALICES}.md"));
        assert_eq!(
            theirs,
            status("never-seen-folder/never-seen.md"),
            "{m} of alice's path"
        );
        assert!(
            !(200..300).contains(&theirs),
            "{m} of alice's path: {theirs}"
        );
    }

    // Alice's things are as she left them.
    let rec = json(alice.get(format!("{}/api/files/{file}", s.url)));
    let tags: Vec<&str> = rec["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        tags.contains(&tag.as_str()) && !tags.contains(&"bobs"),
        "{rec}"
    );
    let r = s
        .http_anon()
        .get(format!("{}{link}/files/{file}", s.url))
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), format!("{ALICES} content"));
    let r = alice
        .head(format!("{}{upload}", s.url))
        .header("Tus-Resumable", "1.0.0")
        .send()
        .unwrap();
    assert_eq!(r.headers()["upload-offset"], "0", "no byte of bob's landed");

    // Bob's stream: his own upload comes, and nothing of alice's came before it.
    let mine = json(
        bob.put(format!("{}/api/files?name=bobs-marker.txt", s.url))
            .body("bob"),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // SQL-shaped tags on his own file are names like any other, read back as sent.
    let shaped = ["x' or '1'='1", "'; drop table files; --"];
    let rec = json(
        bob.post(format!("{}/api/files/{mine}/tags", s.url))
            .json(&serde_json::json!({ "tags": shaped })),
    );
    for t in shaped {
        assert!(
            rec["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["name"] == t),
            "{t}: {rec}"
        );
    }
    let v = json(
        bob.get(format!("{}/api/files", s.url))
            .query(&[("q", format!("tag:\"{}\"", shaped[1]))]),
    );
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(
        json(alice.get(format!("{}/api/files/{file}", s.url)))["id"],
        file
    );
    for (kind, data) in bobs_events {
        assert!(
            !data.contains(ALICES) && !data.contains(&file),
            "bob's stream: {kind} {data}"
        );
        if event_file(&data) == mine {
            break;
        }
    }
}
