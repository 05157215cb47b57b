//! The store conformance suite against the filesystem store (real files in a temp dir), plus
//! filesystem-specific checks: crash leftovers, no partial files, reopening.

use std::sync::Arc;

use bytes::Bytes;
use heph_hub::store::{FsStore, SegmentStore, keys};
use heph_hub::testkit::{origin, owner, segment};

async fn make() -> Arc<dyn SegmentStore> {
    // The directory is leaked for the test's lifetime (removed by the OS temp cleaner); keep it
    // simple: tests are short and directories small.
    let dir = tempfile::tempdir().expect("tempdir").keep();
    Arc::new(FsStore::open(dir).await.expect("open"))
}

heph_hub::store_conformance!(make());

#[tokio::test]
async fn temp_leftovers_are_removed_and_never_visible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsStore::open(dir.path()).await.expect("open");
    // Simulate a crash mid-write: a temp file that was never linked.
    std::fs::write(dir.path().join("tmp/deadbeef"), b"partial").expect("write");
    let s = segment(owner(1), origin(1), 1, None, 2, 10, 1);
    store
        .put_blob(s.id, Bytes::from(s.bytes.clone()))
        .await
        .expect("put");
    drop(store);
    let store = FsStore::open(dir.path()).await.expect("reopen");
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp"))
            .expect("tmp")
            .count(),
        0,
        "tmp/ is emptied on open"
    );
    let path = dir.path().join(keys::blob(&s.id));
    assert_eq!(std::fs::read(path).expect("blob"), s.bytes);
    assert_eq!(
        store.get_blob(s.id).await.expect("get").as_deref(),
        Some(&s.bytes[..])
    );
}

#[tokio::test]
async fn layout_matches_protocol_doc() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsStore::open(dir.path()).await.expect("open");
    let s = segment(owner(1), origin(1), 1, None, 2, 10, 1);
    let log = heph_hub::SegmentLog::open(Arc::new(store), None, Default::default())
        .await
        .expect("log");
    log.push(origin(1), 1, s.id, Bytes::from(s.bytes.clone()))
        .await
        .expect("push");
    let hex = s.id.to_string();
    assert!(
        dir.path()
            .join(format!("blobs/{}/{hex}", &hex[..2]))
            .is_file()
    );
    let entry = dir.path().join(format!(
        "chains/{}/{}/00000000000000000001",
        owner(1),
        origin(1)
    ));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(entry).expect("entry")).expect("json");
    assert_eq!(json["first_seq"], 1);
    assert_eq!(json["last_seq"], 2);
    assert_eq!(json["hash"], hex);
    assert_eq!(json["prev"], serde_json::Value::Null);
    let owner_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("owner")).expect("owner"))
            .expect("json");
    assert_eq!(owner_json["owner"], owner(1).to_string());
}
