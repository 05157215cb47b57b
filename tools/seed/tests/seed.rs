//! heph-seed as a user runs it: real stores made by the real `heph` CLI, the real `heph-seed` binary, a real
//! `hephd --mode local` holding a store, and a real `hephd --mode server` hub over loopback.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::spoke_bin;

fn seed(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_heph-seed"))
        .args(args)
        .output()
        .expect("run heph-seed")
}

fn heph(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(spoke_bin("heph"))
        .args(args)
        .env("HEPH_DATA_DIR", data_dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run heph")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails(o: &Output, needle: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(2),
        "expected exit 2, got {}: {err}",
        o.status
    );
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn info(data_dir: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(&heph(data_dir, &["info", "--json"]))).expect("info json")
}

fn list(data_dir: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(&heph(data_dir, &["list", "--state", "all", "--json"])))
        .expect("list json")
}

/// A store with tasks, a note, tags, a log entry, a link, a done task, made with the real CLI.
fn make_store(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    let a: serde_json::Value = serde_json::from_str(&ok(&heph(
        dir,
        &[
            "task",
            "Water the plants",
            "--project",
            "home",
            "--tag",
            "chore",
            "--json",
        ],
    )))
    .expect("json");
    let b: serde_json::Value = serde_json::from_str(&ok(&heph(
        dir,
        &[
            "task",
            "File taxes",
            "--do-date",
            "+3d",
            "--attention",
            "a1",
            "--json",
        ],
    )))
    .expect("json");
    let id_a = a["id"].as_str().expect("id").to_owned();
    let id_b = b["id"].as_str().expect("id").to_owned();
    ok(&heph(dir, &["log", &id_a, "watered the fern"]));
    ok(&heph(dir, &["link", &id_a, &id_b]));
    ok(&heph(dir, &["done", &id_b]));
    ok(&heph(dir, &["task", "A note about ferns", "--note"]));
    dir.join("heph.db")
}

fn meta(db: &Path, key: &str) -> Option<String> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open");
    c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .ok()
}

#[test]
fn clone_gives_a_verified_copy_with_a_fresh_origin() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src_dir = tmp.path().join("gilbert");
    let src = make_store(&src_dir);
    let before_info = info(&src_dir);
    let before_list = list(&src_dir);
    let dst_dir = tmp.path().join("indri");
    std::fs::create_dir_all(&dst_dir).expect("mkdir");
    let dst = dst_dir.join("heph.db");

    let out = ok(&seed(&[
        "clone",
        "--from",
        src.to_str().expect("utf8"),
        "--to",
        dst.to_str().expect("utf8"),
    ]));
    assert!(
        out.contains("before: owner") && out.contains("after:  owner"),
        "{out}"
    );
    assert!(out.contains("digests match"), "{out}");
    let digests: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split("digest ").nth(1))
        .collect();
    assert_eq!(digests.len(), 2, "{out}");
    assert_eq!(
        digests[0], digests[1],
        "before/after digests printed and equal"
    );
    assert!(
        out.contains(before_info["origin"].as_str().expect("origin")),
        "names the removed origin: {out}"
    );

    // Only meta.origin changed: the copy has none until its first start.
    assert_eq!(meta(&dst, "origin"), None);
    assert_eq!(meta(&dst, "owner_id"), meta(&src, "owner_id"));
    assert!(
        meta(&src, "origin").is_some(),
        "the source keeps its origin"
    );
    let a = heph_seed::digest_of(&src).expect("digest src");
    let b = heph_seed::digest_of(&dst).expect("digest dst");
    assert_eq!(a, b);
    assert!(a.ops >= 6, "{a:?}");

    // The first open there mints a fresh origin; the data is the same.
    let after_info = info(&dst_dir);
    assert_eq!(after_info["owner_id"], before_info["owner_id"]);
    assert_ne!(after_info["origin"], before_info["origin"]);
    assert_eq!(after_info["digest"], before_info["digest"]);
    assert_eq!(list(&dst_dir), before_list);
}

#[test]
fn clone_refuses_bad_targets_and_sources_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = make_store(&tmp.path().join("a"));
    let s = src.to_str().expect("utf8");
    let src_digest = heph_seed::digest_of(&src).expect("digest");
    let src_bytes = std::fs::metadata(&src).expect("meta").len();

    // A seed target that exists.
    let existing = tmp.path().join("exists.db");
    std::fs::write(&existing, b"precious").expect("write");
    fails(
        &seed(&[
            "clone",
            "--from",
            s,
            "--to",
            existing.to_str().expect("utf8"),
        ]),
        "already exists",
    );
    assert_eq!(std::fs::read(&existing).expect("read"), b"precious");
    // Cloning onto itself.
    fails(&seed(&["clone", "--from", s, "--to", s]), "already exists");

    // A source that is not a heph store: random bytes, an SQLite file of something else, nothing at all.
    let junk = tmp.path().join("junk.db");
    std::fs::write(&junk, vec![0x5au8; 8192]).expect("write");
    let dst = tmp.path().join("out.db");
    let d = dst.to_str().expect("utf8");
    fails(
        &seed(&["clone", "--from", junk.to_str().expect("utf8"), "--to", d]),
        "is not a heph store",
    );
    let other = tmp.path().join("other.db");
    rusqlite::Connection::open(&other)
        .and_then(|c| c.execute_batch("CREATE TABLE photos(id INTEGER PRIMARY KEY);"))
        .expect("other db");
    fails(
        &seed(&["clone", "--from", other.to_str().expect("utf8"), "--to", d]),
        "no meta table",
    );
    fails(
        &seed(&[
            "clone",
            "--from",
            tmp.path().join("nope.db").to_str().expect("utf8"),
            "--to",
            d,
        ]),
        "does not exist",
    );
    // A target directory that does not exist.
    fails(
        &seed(&[
            "clone",
            "--from",
            s,
            "--to",
            tmp.path().join("no/such/dir/x.db").to_str().expect("utf8"),
        ]),
        "does not exist",
    );
    assert!(!dst.exists(), "no partial output");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("ls")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(
        heph_seed::digest_of(&src).expect("digest"),
        src_digest,
        "source untouched"
    );
    assert_eq!(std::fs::metadata(&src).expect("meta").len(), src_bytes);
}

fn wait_for_socket(path: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(path).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("hephd exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "hephd socket {} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn refuses_while_a_daemon_holds_the_store() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("spoke");
    let src = make_store(&dir);
    let s = src.to_str().expect("utf8").to_owned();
    let dst = tmp.path().join("copy.db");
    let d = dst.to_str().expect("utf8").to_owned();

    // A real `hephd --mode local` owning the store (lock + socket).
    let mut child = Command::new(spoke_bin("hephd"))
        .args(["--mode", "local", "--data-dir"])
        .arg(&dir)
        .env("HEPH_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hephd");
    wait_for_socket(&dir.join("hephd.sock"), &mut child);
    let daemon = Killed(child);
    let origin_before = meta(&src, "origin");
    fails(
        &seed(&["clone", "--from", &s, "--to", &d]),
        "a daemon holds",
    );
    fails(&seed(&["reset-origin", "--db", &s]), "stop it first");
    assert!(!dst.exists());
    assert_eq!(meta(&src, "origin"), origin_before);
    drop(daemon);

    // Only the lock held (a daemon starting up, before its socket exists).
    let lock = heph_spoke::daemon::StoreLock::acquire(&dir).expect("lock");
    let err = fails(&seed(&["clone", "--from", &s, "--to", &d]), "lock held");
    assert!(err.contains("hephd.lock"), "{err}");
    drop(lock);

    // Only a socket answering (a daemon configured with another lock location, or a stale lock file).
    let _ = std::fs::remove_file(dir.join("hephd.sock"));
    let listener = std::os::unix::net::UnixListener::bind(dir.join("hephd.sock")).expect("bind");
    fails(&seed(&["reset-origin", "--db", &s]), "socket answering");
    drop(listener);
    let _ = std::fs::remove_file(dir.join("hephd.sock"));

    // With the daemon gone, the same clone succeeds.
    ok(&seed(&["clone", "--from", &s, "--to", &d]));
}

#[test]
fn reset_origin_backs_up_first_and_changes_only_the_origin() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("spoke");
    let db = make_store(&dir);
    let d = db.to_str().expect("utf8");
    let old = meta(&db, "origin").expect("origin");
    let before = heph_seed::digest_of(&db).expect("digest");
    let out = ok(&seed(&["reset-origin", "--db", d]));
    assert!(out.contains(&old), "{out}");
    let backup: PathBuf = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("backup: "))
        .map(PathBuf::from)
        .expect("backup line");
    let name = backup
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("heph.db.bak-")
            && name.ends_with('Z')
            && name.len() == "heph.db.bak-20261203T204500Z".len(),
        "{name}"
    );
    assert_eq!(backup.parent(), db.parent(), "next to the store");
    assert_eq!(
        meta(&backup, "origin").as_deref(),
        Some(old.as_str()),
        "the backup keeps the old origin"
    );
    assert_eq!(meta(&db, "origin"), None);
    assert_eq!(heph_seed::digest_of(&db).expect("digest"), before);
    assert_eq!(heph_seed::digest_of(&backup).expect("digest"), before);
    let i = info(&dir);
    assert_ne!(
        i["origin"].as_str(),
        Some(old.as_str()),
        "a fresh origin on the next open"
    );
    // Not a store: refused.
    let junk = tmp.path().join("junk.db");
    std::fs::write(&junk, b"hello").expect("write");
    fails(
        &seed(&["reset-origin", "--db", junk.to_str().expect("utf8")]),
        "is not a heph store",
    );
    assert_eq!(std::fs::read(&junk).expect("read"), b"hello");
}

#[test]
fn init_joins_an_owner_and_never_mints_one() {
    let tmp = tempfile::tempdir().expect("tmp");
    let owner_dir = tmp.path().join("first");
    make_store(&owner_dir);
    let owner = info(&owner_dir)["owner_id"]
        .as_str()
        .expect("owner")
        .to_owned();
    let dir = tmp.path().join("second");
    let db = dir.join("heph.db");
    let d = db.to_str().expect("utf8");
    let out = ok(&seed(&["init", "--owner-id", &owner, "--db", d]));
    assert!(
        out.contains(&owner) && out.contains("joined, not minted"),
        "{out}"
    );
    let i = info(&dir);
    assert_eq!(i["owner_id"].as_str(), Some(owner.as_str()));
    assert_eq!(i["ops"], 0);
    // Bad input: wrong owner id formats, an existing target.
    for bad in [
        "not-a-ulid",
        "01J9ZQ4V8W6Y7X5T3R2Q1P0N9",
        "01J9ZQ4V8W6Y7X5T3R2Q1P0N9MX",
        "",
    ] {
        let target = tmp.path().join("bad/heph.db");
        fails(
            &seed(&[
                "init",
                "--owner-id",
                bad,
                "--db",
                target.to_str().expect("utf8"),
            ]),
            "invalid owner id",
        );
        assert!(!target.exists());
    }
    let before = heph_seed::digest_of(&db).expect("digest");
    fails(
        &seed(&["init", "--owner-id", &owner, "--db", d]),
        "already exists",
    );
    assert_eq!(heph_seed::digest_of(&db).expect("digest"), before);
}

#[test]
fn verify_checks_integrity_schema_and_rebuild() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("spoke");
    let db = make_store(&dir);
    let d = db.to_str().expect("utf8");
    let out = ok(&seed(&["verify", "--db", d]));
    assert!(out.contains("integrity_check: ok"), "{out}");
    assert!(out.contains("(same)"), "{out}");
    assert!(out.contains("schema version:"), "{out}");
    // Stale derived tables: a rebuild from the op log disagrees, and verify says so (exit 2) without repairing.
    {
        let c = rusqlite::Connection::open(&db).expect("open");
        c.execute("UPDATE nodes SET title = 'tampered'", [])
            .expect("tamper");
    }
    let o = seed(&["verify", "--db", d]);
    fails(&o, "rebuild from the op log gives a different state");
    assert!(String::from_utf8_lossy(&o.stdout).contains("DIFFERENT"));
    let c = rusqlite::Connection::open(&db).expect("open");
    let t: String = c
        .query_row("SELECT title FROM nodes LIMIT 1", [], |r| r.get(0))
        .expect("row");
    assert_eq!(t, "tampered", "verify only reads");
    // Not a store.
    fails(
        &seed(&[
            "verify",
            "--db",
            tmp.path().join("none.db").to_str().expect("utf8"),
        ]),
        "does not exist",
    );
    // A newer schema than this build knows.
    let newer = tmp.path().join("newer");
    let ndb = make_store(&newer);
    rusqlite::Connection::open(&ndb)
        .and_then(|c| {
            c.execute(
                "UPDATE meta SET value = '999' WHERE key = 'schema_version'",
                [],
            )
        })
        .expect("bump");
    fails(
        &seed(&["verify", "--db", ndb.to_str().expect("utf8")]),
        "newer than this heph-seed understands",
    );
}

/// A real hub (`hephd --mode server`, dev mode on loopback) over a file store; returns it and its URL.
fn start_hub(dir: &Path) -> (Killed, String) {
    let store = dir.join("hub-store");
    let mut child = Command::new(spoke_bin("hephd"))
        .args(["--mode", "server", "--http-addr", "127.0.0.1:0", "--store"])
        .arg(format!("file://{}", store.display()))
        .env("HEPH_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hub");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("hub listening on ").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("hub address");
    (Killed(child), url)
}

fn sync(data_dir: &Path, url: &str) -> Output {
    let token = data_dir.join("dev-token.json");
    let set = serde_json::json!({
        "version": 1, "hub_url": url, "issuer": "", "client_id": "", "token_endpoint": "",
        "access_token": "dev", "expires_at": 4_000_000_000u64
    });
    std::fs::write(&token, set.to_string()).expect("token");
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    heph(
        data_dir,
        &[
            "sync",
            "--hub-url",
            url,
            "--token-file",
            token.to_str().expect("utf8"),
        ],
    )
}

#[test]
fn hub_import_writes_chains_the_device_later_pushes_identically() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dev_dir = tmp.path().join("device");
    let db = make_store(&dev_dir);
    let store_url = format!("file://{}", tmp.path().join("hub-store").display());
    let d = db.to_str().expect("utf8");
    let out = ok(&seed(&["hub-import", "--from", d, "--store", &store_url]));
    assert!(out.contains("wrote 1 segment(s)"), "{out}");
    let origin = meta(&db, "origin").expect("origin");
    assert!(out.contains(&origin), "{out}");
    // Running it again writes nothing (resumable, idempotent).
    let again = ok(&seed(&["hub-import", "--from", d, "--store", &store_url]));
    assert!(again.contains("wrote 0 segment(s) / 0 op(s)"), "{again}");
    // More ops on the device, then import again: the chain continues from the hub's head.
    ok(&heph(&dev_dir, &["task", "One more"]));
    let more = ok(&seed(&["hub-import", "--from", d, "--store", &store_url]));
    assert!(
        more.contains("wrote 1 segment(s)") && !more.contains("/ 0 op(s)"),
        "{more}"
    );

    // A real hub on that store; the device syncs: its own pushes are identical re-uploads, no fork.
    let (_hub, url) = start_hub(tmp.path());
    let s = sync(&dev_dir, &url);
    let text = ok(&s);
    assert!(
        text.contains("pushed 0 ops"),
        "the hub already held every segment: {text}"
    );

    // A store of another owner is refused by the hub store, which stays as it was.
    let other_dir = tmp.path().join("other");
    let other = make_store(&other_dir);
    fails(
        &seed(&[
            "hub-import",
            "--from",
            other.to_str().expect("utf8"),
            "--store",
            &store_url,
        ]),
        "belongs to owner",
    );
    // Bad store URLs.
    fails(
        &seed(&["hub-import", "--from", d, "--store", "file://relative/dir"]),
        "absolute path",
    );
    fails(
        &seed(&["hub-import", "--from", d, "--store", "ftp://x"]),
        "store URL",
    );
}

#[test]
fn a_clone_syncs_as_a_new_origin_without_a_fork() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a_dir = tmp.path().join("a");
    let a = make_store(&a_dir);
    let (_hub, url) = start_hub(tmp.path());
    ok(&sync(&a_dir, &url));
    let b_dir = tmp.path().join("b");
    std::fs::create_dir_all(&b_dir).expect("mkdir");
    ok(&seed(&[
        "clone",
        "--from",
        a.to_str().expect("utf8"),
        "--to",
        b_dir.join("heph.db").to_str().expect("utf8"),
    ]));
    ok(&heph(&b_dir, &["task", "Written on the clone"]));
    let out = ok(&sync(&b_dir, &url));
    assert!(
        !out.contains("pushed 0 ops") && out.contains("all 2 origins match"),
        "{out}"
    );
    ok(&heph(&a_dir, &["task", "Written on the original"]));
    ok(&sync(&a_dir, &url));
    ok(&sync(&b_dir, &url));
    let titles = |dir: &Path| -> Vec<String> {
        let mut t: Vec<String> = list(dir)
            .as_array()
            .expect("array")
            .iter()
            .map(|n| n["title"].as_str().unwrap_or_default().to_owned())
            .collect();
        t.sort();
        t
    };
    assert_eq!(titles(&a_dir), titles(&b_dir));
    assert!(titles(&a_dir).contains(&"Written on the clone".to_owned()));
    assert!(titles(&b_dir).contains(&"Written on the original".to_owned()));
    assert_ne!(info(&a_dir)["origin"], info(&b_dir)["origin"]);
}
