//! The query language over real records, with user tags: AND, OR, NOT, parentheses, fields;
//! neighbours, the graph, tag listings.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;

/// Six files with user tags; returns their ids by name.
fn corpus(s: &Server) -> std::collections::HashMap<String, String> {
    let files: [(&str, usize, &[&str]); 6] = [
        ("guide.md", 100, &["rust", "markdown"]),
        ("paper.pdf", 2000, &["rust", "pdf"]),
        ("draft.pdf", 3000, &["rust", "pdf", "draft"]),
        ("notes.txt", 10, &["python"]),
        ("报告.md", 50, &["rust", "markdown", "中文"]),
        ("photo.jpg", 500_000, &["holiday"]),
    ];
    let mut ids = std::collections::HashMap::new();
    for (i, (name, len, tags)) in files.iter().enumerate() {
        let id = s.put_ok(name, &bytes(*len, 100 + i as u64))["id"]
            .as_str()
            .unwrap()
            .to_owned();
        s.tag(&id, tags);
        ids.insert(name.to_string(), id);
    }
    ids
}

#[test]
fn tag_expressions() {
    let s = Server::start();
    corpus(&s);
    assert_eq!(
        s.names("rust AND (pdf OR markdown) AND NOT draft"),
        ["guide.md", "paper.pdf", "报告.md"]
    );
    assert_eq!(s.names("rust pdf"), ["draft.pdf", "paper.pdf"]);
    assert_eq!(s.names("python OR holiday"), ["notes.txt", "photo.jpg"]);
    assert_eq!(s.names("-rust"), ["notes.txt", "photo.jpg"]);
    assert_eq!(s.names("NOT (rust OR python)"), ["photo.jpg"]);
    assert_eq!(s.names("中文"), ["报告.md"]);
    assert_eq!(
        s.names("Rust AND Markdown"),
        ["guide.md", "报告.md"],
        "tags compare case-insensitively"
    );
    assert_eq!(s.names("nosuchtag"), Vec::<String>::new());
    assert_eq!(s.names("").len(), 6);
}

#[test]
fn field_predicates() {
    let s = Server::start();
    corpus(&s);
    assert_eq!(
        s.names("size>=2000"),
        ["draft.pdf", "paper.pdf", "photo.jpg"]
    );
    assert_eq!(s.names("size<100"), ["notes.txt", "报告.md"]);
    assert_eq!(s.names("size>1KiB size<=2KB"), ["paper.pdf"]);
    assert_eq!(s.names("name:PAPER"), ["paper.pdf"]);
    assert_eq!(s.names("ext:md"), ["guide.md", "报告.md"]);
    assert_eq!(s.names("name:\"报\""), ["报告.md"]);
    let today = time::OffsetDateTime::now_utc().date();
    assert_eq!(s.names(&format!("created:{today}")).len(), 6);
    assert_eq!(s.names("created<2020-01-01").len(), 0);
    assert_eq!(s.names("modified>2020").len(), 6);
    let hash = s.get_json("/api/files?q=name:notes")["files"][0]["hash"]
        .as_str()
        .unwrap()[..8]
        .to_owned();
    assert_eq!(s.names(&format!("hash:{hash}")), ["notes.txt"]);
    assert_eq!(s.names("pdf AND size>2500"), ["draft.pdf"]);
}

#[test]
fn malformed_queries_are_400_with_a_position() {
    let s = Server::start();
    for (q, pos) in [
        ("rust AND", 8usize),
        ("(rust OR pdf", 0),
        ("rust)", 4),
        ("foo:bar", 0),
        ("size>lots", 5),
        ("a OR OR b", 5),
        ("\"open", 0),
        // Full-text terms: the database's own syntax is refused or taken as words, never run.
        ("text:\"a\" OR x NEAR(", 19),
        ("x text:\"open", 7),
        ("text:!!!", 5),
        (
            "text:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            5,
        ),
    ] {
        let r = s
            .http()
            .get(format!("{}/api/files", s.url))
            .query(&[("q", q)])
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "{q}");
        let v: serde_json::Value = r.json().unwrap();
        assert_eq!(v["code"], "bad_query", "{q}");
        assert_eq!(v["position"], pos, "{q}: {v}");
        assert!(v["error"].as_str().unwrap().starts_with("query: "), "{v}");
    }
    let r = s
        .http()
        .get(format!("{}/api/graph", s.url))
        .query(&[("q", "((")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// A query's cost is bounded by its terms: ~600 tag predicates fit in 4 KiB and are refused by
/// name, and so is a graph's `around=` of too many nodes, or of a file with too many tags (its
/// neighbourhood is an OR of every tag it carries).
#[test]
fn query_terms_are_bounded_with_a_400_naming_the_limit() {
    let s = Server::start();
    let get = |path: &str, params: &[(&str, &str)]| {
        let r = s
            .http()
            .get(format!("{}{path}", s.url))
            .query(params)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<serde_json::Value>().unwrap())
    };
    let refused = |(status, v): (u16, serde_json::Value), what: &str| {
        assert_eq!(status, 400, "{what}: {v}");
        assert_eq!(v["code"], "bad_query", "{what}: {v}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains("at most 64 (MAX_TERMS)"), "{what}: {msg}");
    };
    let many = (0..600)
        .map(|i| format!("-t{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(many.len() <= 4096);
    refused(get("/api/files", &[("q", &many)]), "files");
    refused(get("/api/graph", &[("q", &many)]), "graph");
    let nodes = (0..65)
        .map(|i| format!("t:x{i}"))
        .collect::<Vec<_>>()
        .join(",");
    refused(get("/api/graph", &[("around", &nodes)]), "around nodes");

    let id = s.put_ok("wide.txt", b"wide")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tags: Vec<String> = (0..65).map(|i| format!("w{i}")).collect();
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    s.tag(&id, &tags);
    refused(
        get("/api/graph", &[("around", &format!("f:{id}"))]),
        "around a wide file",
    );
    // At the limit, both are answered.
    let at = (0..64)
        .map(|i| format!("-t{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(get("/api/files", &[("q", &at)]).0, 200);
    assert_eq!(get("/api/graph", &[("around", "t:w1,t:w2")]).0, 200);
}

#[test]
fn removing_tags_and_hiding_automatic_ones() {
    let s = Server::start();
    let ids = corpus(&s);
    let id = &ids["draft.pdf"];
    let r = s
        .http()
        .delete(format!("{}/api/files/{id}/tags", s.url))
        .json(&serde_json::json!({"tags": ["draft"]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.names("draft"), Vec::<String>::new());
    // Automatic tags (here the kind tag `other`) can be hidden per file.
    s.wait_tagged();
    let before = s.names("other");
    assert!(before.contains(&"draft.pdf".to_string()), "{before:?}");
    s.http()
        .delete(format!("{}/api/files/{id}/tags", s.url))
        .json(&serde_json::json!({"tags": ["other"]}))
        .send()
        .unwrap();
    let after = s.names("other");
    assert!(
        !after.contains(&"draft.pdf".to_string()) && after.len() == before.len() - 1,
        "{after:?}"
    );
    // Bad tags are 422.
    let r = s
        .http()
        .post(format!("{}/api/files/{id}/tags", s.url))
        .json(&serde_json::json!({"tags": ["bad\u{0}tag"]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = s
        .http()
        .post(format!("{}/api/files/nope/tags", s.url))
        .json(&serde_json::json!({"tags": ["x"]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[test]
fn neighbours_graph_and_tag_listings() {
    let s = Server::start();
    let ids = corpus(&s);
    s.wait_tagged();
    let rel = s.get_json(&format!("/api/files/{}/related?limit=10", ids["guide.md"]));
    let names: Vec<&str> = rel["related"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["file"]["name"].as_str().unwrap())
        .collect();
    // 报告.md shares rust + markdown (+ kind tags): the closest neighbour.
    assert_eq!(names[0], "报告.md", "{rel}");
    assert!(!names.contains(&"guide.md"));
    let shared = rel["related"][0]["shared_tags"].as_array().unwrap();
    assert!(
        shared.contains(&"markdown".into()) && shared.contains(&"rust".into()),
        "{shared:?}"
    );

    let g = s.get_json("/api/graph?q=rust");
    let nodes = g["nodes"].as_array().unwrap();
    let files = nodes.iter().filter(|n| n["type"] == "file").count();
    assert_eq!(files, 4);
    let rust = nodes.iter().find(|n| n["id"] == "t:rust").unwrap();
    assert_eq!(
        (rust["kind"].as_str(), rust["degree"].as_u64()),
        (Some("user"), Some(4))
    );
    for e in g["edges"].as_array().unwrap() {
        assert!(
            nodes.iter().any(|n| n["id"] == e["source"])
                && nodes.iter().any(|n| n["id"] == e["target"])
        );
    }
    assert_eq!(g["truncated"], false);
    // Bounded: never more nodes than asked for, and it says so.
    let g = s.get_json("/api/graph?limit=5");
    assert!(g["nodes"].as_array().unwrap().len() <= 5);
    assert_eq!(g["truncated"], true);

    // The neighbourhood of a file: the files that share one of its tags.
    let g = s.get_json(&format!("/api/graph?around=f:{}", ids["notes.txt"]));
    let files: Vec<&str> = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] == "file")
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert!(files.contains(&"notes.txt"), "{files:?}");
    let g = s.get_json("/api/graph?around=t:holiday");
    let files: Vec<&str> = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] == "file")
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["photo.jpg"]);
    let r = s
        .http()
        .get(format!("{}/api/graph?around=x:y", s.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);

    let t = s.get_json("/api/tags?prefix=ru");
    assert_eq!(t["tags"][0]["name"], "rust");
    assert_eq!(t["tags"][0]["files"], 4);
    let co = s.get_json("/api/tags/cooccurrence?limit=100");
    let pairs = co["pairs"].as_array().unwrap();
    let rp = pairs
        .iter()
        .find(|p| p["a"] == "pdf" && p["b"] == "rust")
        .expect("pdf+rust pair");
    assert_eq!(rp["files"], 2);
}
