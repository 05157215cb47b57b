//! CLI tests: the real `heph` binary in temporary data directories, as a user runs it.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A temporary data directory and a way to run `heph` against it (ripgrep's `TestCommand` style).
struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }
    fn path(&self) -> &Path {
        self.tmp.path()
    }
    fn db(&self) -> PathBuf {
        self.path().join("heph.db")
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_heph"));
        c.args(args)
            .env("HEPH_DATA_DIR", self.path())
            .env_remove("NO_COLOR");
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run heph")
    }
    fn run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn heph");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("wait heph")
    }
    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "heph {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).expect("utf-8 stdout")
    }
    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("heph {args:?}: not JSON ({e}): {out}"))
    }
    /// Runs and expects a clean failure: exit 2, one `error:` line, no panic. Returns the line.
    fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        check_failure(args, &o)
    }
    fn state(&self) -> (String, u64) {
        let v = self.json(&["info", "--json"]);
        (
            v["digest"].as_str().unwrap_or_default().to_owned(),
            v["ops"].as_u64().unwrap_or(0),
        )
    }
    fn add(&self, args: &[&str]) -> Value {
        let mut a = vec!["task"];
        a.extend_from_slice(args);
        a.push("--json");
        self.json(&a)
    }
}

fn check_failure(args: &[&str], o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(2),
        "heph {args:?} should exit 2; stderr: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "panic on {args:?}: {err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one error line for {args:?}, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_owned()
}

#[test]
fn task_json_has_the_documented_fields() {
    let d = Dir::new();
    let v = d.add(&[
        "Buy",
        "milk",
        "--project",
        "home",
        "--do-date",
        "2027-01-05",
        "--late-on",
        "2027-01-07",
        "-a",
        "a1",
        "--recur",
        "weekly",
        "--tag",
        "shop",
        "--tag",
        "errand",
    ]);
    assert_eq!(v["title"], "Buy milk");
    assert_eq!(v["state"], "outstanding");
    assert_eq!(v["project"], "home");
    assert_eq!(v["tags"], serde_json::json!(["errand", "shop"]));
    assert_eq!(v["do_date"], "2027-01-05");
    assert_eq!(v["late_on"], "2027-01-07");
    assert_eq!(v["attention"], "a1");
    assert_eq!(v["recurrence"], "FREQ=WEEKLY");
    let id = v["id"].as_str().unwrap();
    assert_eq!(id.len(), 26);
    let list = d.json(&["list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0], v);
}

#[test]
fn full_task_life() {
    let d = Dir::new();
    let a = d.add(&["write report", "-p", "work", "-a", "a2"]);
    let b = d.add(&["call mum", "--do-date", "today"]);
    let id = a["id"].as_str().unwrap();
    let short = &id[..12];
    // Prefix ids, edit, clearing with none.
    let e = d.json(&[
        "edit",
        short,
        "--title",
        "write the report",
        "--project",
        "none",
        "--do-date",
        "+3d",
        "--json",
    ]);
    assert_eq!(e["title"], "write the report");
    assert_eq!(e["project"], Value::Null);
    assert!(e["do_date"].is_string());
    d.ok(&["tag", short, "urgent"]);
    d.ok(&["untag", short, "urgent"]);
    d.ok(&["tag", short, "q4"]);
    d.ok(&["context", short, "--body", "line one\nline two"]);
    d.ok(&["context", short, "--append", "line three"]);
    assert_eq!(
        d.ok(&["context", short]),
        "line one\nline two\nline three\n"
    );
    let o = d.run_stdin(&["context", short, "--append", "-"], "from stdin\n");
    assert!(o.status.success());
    d.ok(&["log", short, "talked", "to", "Sam"]);
    d.ok(&["link", short, b["id"].as_str().unwrap(), "--kind", "blocks"]);
    let show = d.json(&["show", short, "--json"]);
    assert_eq!(show["tags"], serde_json::json!(["q4"]));
    assert_eq!(
        show["context"],
        "line one\nline two\nline three\nfrom stdin\n"
    );
    assert_eq!(show["log"][0]["text"], "talked to Sam");
    assert_eq!(show["links"][0]["kind"], "blocks");
    assert_eq!(show["links"][0]["title"], "call mum");
    let human = d.ok(&["show", short]);
    assert!(human.contains("write the report") && human.contains("talked to Sam"));
    // Search finds context, log and title words, with snippets.
    let hits = d.json(&["search", "stdin", "--json"]);
    assert_eq!(hits[0]["id"], id);
    assert!(hits[0]["snippet"].as_str().unwrap().contains("[stdin]"));
    assert_eq!(
        d.json(&["search", "Sam", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Next shows the undated and due ones; done and drop.
    let next = d.json(&["next", "--json"]);
    assert_eq!(next.as_array().unwrap().len(), 1, "{next}");
    d.ok(&["done", short]);
    assert_eq!(d.json(&["list", "--json"]).as_array().unwrap().len(), 1);
    assert_eq!(
        d.json(&["list", "--state", "done", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    d.ok(&["drop", b["id"].as_str().unwrap()]);
    assert_eq!(
        d.json(&["list", "--state", "all", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Undo the drop.
    assert!(d.ok(&["undo"]).contains("undid drop"));
    assert_eq!(d.json(&["list", "--json"]).as_array().unwrap().len(), 1);
    // History.
    let h = d.json(&["history", short, "--json"]);
    assert!(h.as_array().unwrap().len() >= 10);
    let doctor = d.json(&["doctor", "--json"]);
    assert_eq!(doctor["ok"], true);
}

#[test]
fn recurring_done_and_skip_create_the_next_occurrence() {
    let d = Dir::new();
    let t = d.add(&[
        "water plants",
        "--do-date",
        "2027-03-01",
        "--recur",
        "every 3 days",
    ]);
    let id = t["id"].as_str().unwrap();
    let done = d.json(&["done", id, "--json"]);
    assert_eq!(done["next"]["do_date"], "2027-03-04");
    assert_eq!(done["next"]["series"], id);
    let next = done["next"]["id"].as_str().unwrap().to_owned();
    let skipped = d.json(&["skip", &next, "--json"]);
    assert_eq!(skipped["node"]["state"], "dropped");
    assert_eq!(skipped["next"]["do_date"], "2027-03-07");
    assert_eq!(d.json(&["list", "--json"]).as_array().unwrap().len(), 1);
    let plain = d.add(&["not recurring"]);
    let err = d.fails(&["skip", plain["id"].as_str().unwrap()]);
    assert!(err.contains("not recurring"), "{err}");
}

#[test]
fn projects_conflicts_export() {
    let d = Dir::new();
    d.ok(&["project", "add", "garden"]);
    d.add(&["dig", "-p", "garden"]);
    d.add(&["plan", "-p", "house"]);
    let ps = d.json(&["project", "list", "--json"]);
    let names: Vec<&str> = ps
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["garden", "house"]);
    assert_eq!(ps[0]["outstanding"], 1);
    let err = d.fails(&["project", "add", "garden"]);
    assert!(err.contains("already exists"));
    assert_eq!(d.json(&["conflicts", "--json"]), serde_json::json!([]));
    assert_eq!(
        d.json(&["list", "--project", "garden", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let export = d.json(&["export", "--format", "json"]);
    assert_eq!(export["nodes"].as_array().unwrap().len(), 3);
    let md = d.ok(&["export", "--format", "markdown"]);
    assert!(md.contains("## garden") && md.contains("- [ ] dig"));
    d.fails(&["export", "--format", "xml"]);
}

#[test]
fn colours_follow_no_color_and_tty() {
    let d = Dir::new();
    d.add(&["red one", "-a", "a1"]);
    // Not a TTY: no escapes.
    assert!(!d.ok(&["list"]).contains('\x1b'));
    // Forced on: escapes; NO_COLOR does not override an explicit --color always.
    assert!(d.ok(&["list", "--color", "always"]).contains("\x1b[1;31m"));
    let o = d.cmd(&["list"]).env("NO_COLOR", "1").output().unwrap();
    assert!(!String::from_utf8_lossy(&o.stdout).contains('\x1b'));
}

#[test]
fn taskwarrior_import_is_idempotent() {
    let d = Dir::new();
    let data = r#"[
      {"uuid":"5a0f3ec4-0000-4000-8000-000000000001","description":"pay rent","status":"pending","project":"home","tags":["money"],
       "entry":"20261101T090000Z","due":"20261205T000000Z","scheduled":"20261203T000000Z","recur":"monthly","priority":"H",
       "annotations":[{"entry":"20261102T090000Z","description":"bank closed on sunday"}]},
      {"uuid":"5a0f3ec4-0000-4000-8000-000000000002","description":"old thing","status":"completed","entry":"20261001T090000Z"},
      {"uuid":"5a0f3ec4-0000-4000-8000-000000000003","description":"template","status":"recurring","recur":"weekly","entry":"20261001T090000Z"},
      {"uuid":"5a0f3ec4-0000-4000-8000-000000000004","description":"gone","status":"deleted","entry":"20261001T090000Z"}
    ]"#;
    let f = d.path().join("tw.json");
    std::fs::write(&f, data).unwrap();
    let out = d.ok(&["import", "taskwarrior", f.to_str().unwrap()]);
    assert!(out.contains("3 created"), "{out}");
    let list = d.json(&["list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let t = &list[0];
    assert_eq!(t["title"], "pay rent");
    assert_eq!(t["project"], "home");
    assert_eq!(t["do_date"], "2026-12-03");
    assert_eq!(t["late_on"], "2026-12-05");
    assert_eq!(t["recurrence"], "FREQ=MONTHLY");
    assert_eq!(t["attention"], "a1");
    let show = d.json(&["show", t["id"].as_str().unwrap(), "--json"]);
    assert!(
        show["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["text"] == "bank closed on sunday")
    );
    let before = d.state();
    let o = d.run_stdin(&["import", "taskwarrior", "-"], data);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("3 unchanged"));
    assert_eq!(d.state(), before, "re-import changes nothing");
    assert_eq!(
        d.json(&["list", "--state", "all", "--json"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

// ---- bad input: a clear one-line error, exit 2, and nothing in the store changes ----

#[test]
fn bad_ids_unknown_ambiguous_short() {
    let d = Dir::new();
    let a = d.add(&["one"]);
    d.add(&["two"]);
    let before = d.state();
    let a_id = a["id"].as_str().unwrap();
    let e = d.fails(&["done", &a_id[..5]]);
    assert!(e.contains("ambiguous"), "{e}");
    let e = d.fails(&["done", "ZZZZZZ"]);
    assert!(e.contains("no node matches"), "{e}");
    let e = d.fails(&["done", "ab"]);
    assert!(e.contains("at least 4"), "{e}");
    let e = d.fails(&["show", "not-an-id!"]);
    assert!(e.contains("invalid id"), "{e}");
    assert_eq!(d.state(), before);
}

#[test]
fn bad_dates_recurrences_attention_title() {
    let d = Dir::new();
    let a = d.add(&["one"]);
    let id = a["id"].as_str().unwrap();
    let before = d.state();
    for args in [
        vec!["task", "x", "--do-date", "someday"],
        vec!["task", "x", "--late-on", "2026-02-30"],
        vec!["edit", id, "--do-date", "32/1"],
    ] {
        let e = d.fails(&args);
        assert!(e.contains("cannot parse date"), "{e}");
    }
    for args in [
        vec!["task", "x", "--recur", "sometimes"],
        vec!["edit", id, "--recur", "every 0 days"],
    ] {
        let e = d.fails(&args);
        assert!(e.contains("cannot parse recurrence"), "{e}");
    }
    for args in [
        vec!["task", "x", "-a", "a5"],
        vec!["edit", id, "--attention", "red"],
    ] {
        let e = d.fails(&args);
        assert!(e.contains("invalid attention"), "{e}");
    }
    for args in [
        vec!["task", ""],
        vec!["task", "   "],
        vec!["edit", id, "--title", ""],
    ] {
        let e = d.fails(&args);
        assert!(e.contains("title must not be empty"), "{e}");
    }
    assert_eq!(d.state(), before);
}

#[test]
fn corrupted_database_file() {
    let d = Dir::new();
    let junk: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(d.db(), &junk).unwrap();
    let e = d.fails(&["list"]);
    assert!(e.contains("not a heph database"), "{e}");
    assert_eq!(std::fs::read(d.db()).unwrap(), junk, "file untouched");
    // A real store whose pages were damaged.
    let d2 = Dir::new();
    d2.add(&["one"]);
    let mut bytes = std::fs::read(d2.db()).unwrap();
    for b in bytes.iter_mut().skip(100).take(3000) {
        *b = 0xA5;
    }
    std::fs::write(d2.db(), &bytes).unwrap();
    let o = d2.run(&["list"]);
    check_failure(&["list"], &o);
}

#[test]
fn foreign_sqlite_database() {
    let d = Dir::new();
    {
        let c = rusqlite::Connection::open(d.db()).unwrap();
        c.execute_batch("CREATE TABLE accounts(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO accounts(name) VALUES ('x');")
            .unwrap();
    }
    let before = std::fs::read(d.db()).unwrap();
    let e = d.fails(&["task", "hello"]);
    assert!(e.contains("not a heph store"), "{e}");
    assert_eq!(std::fs::read(d.db()).unwrap(), before);
}

#[test]
fn newer_schema_is_refused() {
    let d = Dir::new();
    d.add(&["one"]);
    {
        let c = rusqlite::Connection::open(d.db()).unwrap();
        c.execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    }
    let before = std::fs::read(d.db()).unwrap();
    let e = d.fails(&["task", "two"]);
    assert!(
        e.contains("schema version 99") && e.contains("upgrade"),
        "{e}"
    );
    assert_eq!(std::fs::read(d.db()).unwrap(), before);
}

#[test]
fn read_only_data_dir() {
    // A directory nobody (not even root) can create files in.
    let o = Command::new(env!("CARGO_BIN_EXE_heph"))
        .args(["--data-dir", "/sys/kernel", "task", "x"])
        .output()
        .unwrap();
    let e = check_failure(&["task"], &o);
    assert!(e.contains("cannot write the store"), "{e}");
    // An existing store in a directory made read-only (permission bits do not bind root).
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if is_root {
        println!(
            "skipping the chmod part of read_only_data_dir: running as root ignores permission bits"
        );
        return;
    }
    let d = Dir::new();
    d.add(&["one"]);
    let before = std::fs::read(d.db()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for p in std::fs::read_dir(d.path()).unwrap() {
        let p = p.unwrap().path();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let o = d.run(&["task", "two"]);
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    check_failure(&["task", "two"], &o);
    assert_eq!(std::fs::read(d.db()).unwrap(), before);
}

#[test]
fn path_a_origin_reset_mints_a_fresh_origin() {
    let d = Dir::new();
    d.add(&["one"]);
    let info = d.json(&["info", "--json"]);
    {
        let c = rusqlite::Connection::open(d.db()).unwrap();
        c.execute("DELETE FROM meta WHERE key = 'origin'", [])
            .unwrap();
    }
    d.add(&["two"]);
    let after = d.json(&["info", "--json"]);
    assert_ne!(after["origin"], info["origin"]);
    assert_eq!(after["owner_id"], info["owner_id"]);
    assert_eq!(after["origins"].as_array().unwrap().len(), 2);
    assert_eq!(d.json(&["list", "--json"]).as_array().unwrap().len(), 2);
}

#[test]
fn usage_errors_and_broken_pipe() {
    let d = Dir::new();
    let o = d.run(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
    for i in 0..50 {
        d.add(&[&format!("task {i}")]);
    }
    // A closed pipe is not an error.
    let mut child = d
        .cmd(&["list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
}
