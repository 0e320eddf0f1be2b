//! `BlobStore` over object stores (the branches that are not local disk): OpenDAL's in-memory
//! service, and a real S3-compatible server (SeaweedFS, started and stopped here; skipped with
//! the reason when it is not installed, a failure under DISGRAFS_REQUIRE_WEED=1): stage, commit
//! (and commit again), whole and ranged reads, delete; `--blobs` URLs; the one-line refusals at
//! start-up (missing bucket, refused credentials, unreachable endpoint, a data directory whose
//! blobs are elsewhere).
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

use bytes::Bytes;
use disgrafs_store::{BlobLocation, BlobStore, S3Location, Store, StoreError};
use futures::TryStreamExt;
use opendal::Operator;

fn memory_store(dir: &std::path::Path) -> BlobStore {
    let op = Operator::new(opendal::services::Memory::default())
        .unwrap()
        .finish();
    BlobStore::with_operator(op, None, dir).unwrap()
}

async fn read_all(b: &BlobStore, hash: &str, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let parts: Vec<Bytes> = b
        .read(hash, range)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    parts.concat()
}

mod weed;

#[tokio::test]
async fn object_store_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(&memory_store(dir.path()), dir.path(), 3_000_000).await;
}

/// Stage, commit, read (whole and a range), commit again, delete. `size` above the writer's
/// 8 MiB chunk makes an S3 upload multipart.
async fn round_trip(blobs: &BlobStore, dir: &std::path::Path, size: u32) {
    assert!(
        blobs.local_path("00").is_none(),
        "an object store has no local paths"
    );
    // More than one staging piece and one read chunk, so every loop runs more than once.
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut staging = blobs.stage().await.unwrap();
    for piece in data.chunks(700_000) {
        staging.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    let staged = staging.finish().await.unwrap();
    assert_eq!(staged.hash, blake3::hash(&data).to_hex().to_string());
    assert_eq!(staged.size, data.len() as u64);
    assert_eq!(staged.head, data[..disgrafs_core::HEAD_BYTES]);
    let hash = staged.hash.clone();
    blobs.commit(staged).await.unwrap();
    assert_eq!(
        std::fs::read_dir(dir.join("tmp/staging")).unwrap().count(),
        0,
        "the staging file is gone once the object is written"
    );

    assert_eq!(read_all(blobs, &hash, None).await, data);
    assert_eq!(
        read_all(blobs, &hash, Some(1_234_567..2_345_678)).await,
        data[1_234_567..2_345_678]
    );

    // Committing known content again is a no-op that still consumes the staging file.
    let mut again = blobs.stage().await.unwrap();
    again.write(Bytes::from(data.clone())).await.unwrap();
    blobs.commit(again.finish().await.unwrap()).await.unwrap();
    assert_eq!(read_all(blobs, &hash, None).await, data);

    blobs.delete(&hash).await.unwrap();
    let gone = blobs.read(&hash, None).await;
    assert!(
        matches!(gone, Err(StoreError::NotFound(_))),
        "a deleted object cannot be read"
    );
}

fn s3(bucket: &str, endpoint: &str, secret: &str) -> BlobLocation {
    BlobLocation::S3(S3Location {
        bucket: bucket.into(),
        endpoint: Some(endpoint.into()),
        credentials: Some((weed::ACCESS_KEY.into(), secret.into())),
        ..S3Location::default()
    })
}

fn config_error(r: Result<impl std::fmt::Debug, StoreError>) -> String {
    match r {
        Err(StoreError::Config(m)) => {
            assert!(!m.contains('\n'), "one line: {m}");
            m
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn blob_urls() {
    let loc: BlobLocation =
        "s3://media/disgrafs/v1?endpoint=http://127.0.0.1:8333/&region=eu-west-1"
            .parse()
            .unwrap();
    let BlobLocation::S3(s) = &loc else {
        panic!("{loc:?}")
    };
    assert_eq!(
        (
            s.bucket.as_str(),
            s.prefix.as_str(),
            s.endpoint.as_deref(),
            s.region.as_deref()
        ),
        (
            "media",
            "disgrafs/v1",
            Some("http://127.0.0.1:8333"),
            Some("eu-west-1")
        )
    );
    assert_eq!(
        loc.to_string(),
        "s3://media/disgrafs/v1 at http://127.0.0.1:8333"
    );
    assert_eq!(
        "local".parse::<BlobLocation>().unwrap(),
        BlobLocation::Local
    );
    for (bad, why) in [
        ("s3://", "no bucket"),
        ("s3://b?colour=red", "unknown parameter"),
        ("s3://key:secret@b", "credentials do not belong"),
        ("http://b", "expected `local`"),
        ("s3://b?endpoint=ftp://x", "http:// or https://"),
        ("not a url", "--blobs"),
    ] {
        let m = config_error(bad.parse::<BlobLocation>());
        assert!(m.contains(why), "{bad}: {m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_compatible_server() {
    let Some(bin) = weed::weed_binary("s3_compatible_server") else {
        return;
    };
    let server = weed::Weed::start(&bin);
    server.create_bucket("disgrafs");
    let endpoint = server.endpoint();
    let dir = tempfile::tempdir().unwrap();

    // 20 MB: a multipart upload (8 MiB parts) and several read chunks.
    let good = s3("disgrafs", &endpoint, weed::SECRET_KEY);
    let blobs = BlobStore::open(&good, dir.path()).await.unwrap();
    round_trip(&blobs, dir.path(), 20_000_000).await;

    // Refusals at start-up, each one line naming the cause.
    let m = config_error(
        BlobStore::open(
            &s3("no-such-bucket", &endpoint, weed::SECRET_KEY),
            dir.path(),
        )
        .await,
    );
    assert!(m.contains("does not exist"), "{m}");
    let m =
        config_error(BlobStore::open(&s3("disgrafs", &endpoint, "wrong-secret"), dir.path()).await);
    assert!(m.contains("refused"), "{m}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let m = config_error(
        BlobStore::open(
            &s3("disgrafs", &format!("http://{closed}"), weed::SECRET_KEY),
            dir.path(),
        )
        .await,
    );
    assert!(m.contains("http://127.0.0.1"), "{m}");

    // A store on S3 keeps its records in the data directory, which remembers where its blobs
    // are: reopening it with local blobs would make every record point at nothing.
    let data = dir.path().join("data");
    let store = Store::open(&data, None, &good, 0.5).await.unwrap();
    drop(store);
    let m = config_error(
        Store::open(&data, None, &BlobLocation::Local, 0.5)
            .await
            .map(|_| ()),
    );
    assert!(m.contains("keeps its blobs at s3://disgrafs"), "{m}");
    Store::open(&data, None, &good, 0.5).await.unwrap();
}
