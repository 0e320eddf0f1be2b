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
