//! The store conformance suite against the filesystem store (real files in a temp dir), plus
//! filesystem-specific checks: crash leftovers, no partial files, reopening.

use std::sync::Arc;

use bytes::Bytes;
use heph_hub::store::{FsStore, PutOutcome, SegmentStore, keys};
use heph_hub::testkit::{origin, owner, position_of, segment};

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
        files_under(&dir.path().join("tmp")),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_directory_never_both_win_a_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one: Arc<dyn SegmentStore> = Arc::new(FsStore::open(dir.path()).await.expect("open"));
    let two: Arc<dyn SegmentStore> = Arc::new(FsStore::open(dir.path()).await.expect("open"));
    for round in 0..20u64 {
        let o = origin(round as u16 + 1);
        let tasks: Vec<_> = (0..8u64)
            .map(|i| {
                let store = Arc::clone(if i % 2 == 0 { &one } else { &two });
                let s = segment(owner(1), o, 1, None, 1 + i as usize, 50, round * 100 + i);
                tokio::spawn(async move {
                    let p = position_of(&s);
                    let r = store
                        .put_segment(owner(1), o, &p, Bytes::from(s.bytes))
                        .await
                        .expect("put");
                    (p, r)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            let (p, r) = t.await.expect("join");
            match r {
                PutOutcome::Created => winners.push(p),
                PutOutcome::Exists(_) => {}
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: one winner, got {winners:?}"
        );
        for store in [&one, &two] {
            assert_eq!(
                store.get_position(owner(1), o, 1).await.expect("get"),
                Some(winners[0])
            );
            assert!(
                store
                    .get_blob(winners[0].hash)
                    .await
                    .expect("blob")
                    .is_some()
            );
        }
    }
    assert_eq!(
        files_under(&dir.path().join("tmp")),
        0,
        "no temp files are left behind"
    );
}

/// Files (not directories) anywhere under `dir`.
fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() { files_under(&p) } else { 1 }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn acknowledged_pushes_come_back_when_the_disk_lost_their_files() {
    // What a power loss can do on a filesystem without its own journal: names or data of
    // files written after the last sync are gone. The store's journal brings them back.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(FsStore::open(dir.path()).await.expect("open"));
    let log = heph_hub::SegmentLog::open(store.clone(), None, Default::default())
        .await
        .expect("log");
    let first = segment(owner(1), origin(1), 1, None, 2, 10, 1);
    let second = segment(owner(1), origin(1), 3, Some(first.id), 2, 10, 2);
    for s in [&first, &second] {
        log.push(
            origin(1),
            s.header.first_seq,
            s.id,
            Bytes::from(s.bytes.clone()),
        )
        .await
        .expect("push");
    }
    drop(log);
    drop(store);
    let entry = |seq: u64| dir.path().join(keys::position(owner(1), origin(1), seq));
    std::fs::remove_file(dir.path().join(keys::blob(&first.id))).expect("lose blob");
    std::fs::write(entry(3), b"\0\0\0").expect("tear entry");
    std::fs::remove_file(dir.path().join("owner")).expect("lose owner");

    let store = FsStore::open(dir.path()).await.expect("reopen");
    assert_eq!(store.owner().await.expect("owner"), Some(owner(1)));
    for s in [&first, &second] {
        assert_eq!(
            store.get_blob(s.id).await.expect("blob").as_deref(),
            Some(&s.bytes[..])
        );
        assert_eq!(
            store
                .get_position(owner(1), origin(1), s.header.first_seq)
                .await
                .expect("entry"),
            Some(position_of(s))
        );
    }
    let journals = std::fs::read_dir(dir.path().join("journal"))
        .expect("ls")
        .count();
    assert_eq!(
        journals, 1,
        "replayed journals are removed; only the open store's is left"
    );
}
