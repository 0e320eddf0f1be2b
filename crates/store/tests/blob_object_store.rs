//! `BlobStore` over an OpenDAL operator that is not local disk (the branches S3-compatible stores
//! take), run on OpenDAL's in-memory service: stage, commit (and commit again), whole and ranged
//! reads, delete.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

use bytes::Bytes;
use disgrafs_store::{BlobStore, StoreError};
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

#[tokio::test]
async fn object_store_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = memory_store(dir.path());
    assert!(
        blobs.local_path("00").is_none(),
        "an object store has no local paths"
    );
    // More than one staging piece and one read chunk, so every loop runs more than once.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
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
        std::fs::read_dir(dir.path().join("tmp/staging"))
            .unwrap()
            .count(),
        0,
        "the staging file is gone once the object is written"
    );

    assert_eq!(read_all(&blobs, &hash, None).await, data);
    assert_eq!(
        read_all(&blobs, &hash, Some(1_234_567..2_345_678)).await,
        data[1_234_567..2_345_678]
    );

    // Committing known content again is a no-op that still consumes the staging file.
    let mut again = blobs.stage().await.unwrap();
    again.write(Bytes::from(data.clone())).await.unwrap();
    blobs.commit(again.finish().await.unwrap()).await.unwrap();
    assert_eq!(read_all(&blobs, &hash, None).await, data);

    blobs.delete(&hash).await.unwrap();
    let gone = blobs.read(&hash, None).await;
    assert!(
        matches!(gone, Err(StoreError::NotFound(_))),
        "a deleted object cannot be read"
    );
}
