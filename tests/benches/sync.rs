//! Sync benchmarks with real processes on loopback (release build): bring-up of a fresh spoke from a hub
//! holding 1,000,000 ops of 3 origins (ops/s, peak RSS), propagation latency from a CLI write on spoke A
//! to spoke B's daemon having applied it (p50/p99 over 200 writes), and an idle daemon's CPU use.
//!
//! `cargo bench -p heph-e2e --bench sync [-- bringup|latency|idle|tasks]` (`tasks`: heph's side of the
//! TaskChampion 3.1 comparison, see `tests/tc-bench`); `HEPH_BENCH_OPS` changes the
//! bring-up size. Figures go in docs/benchmarks.md ("## Sync").

#[path = "../tests/sync_support/mod.rs"]
mod sync_support;

use std::process::Command;
use std::time::{Duration, Instant};

use heph_format::OwnerId;
use sync_support::{Hub, Spoke, heph_bin, wait_until};

fn owner() -> OwnerId {
    OwnerId::from_parts(1_767_225_600_000, [0x5b; 10])
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn bringup() {
    let total: u64 = std::env::var("HEPH_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = Hub::start(&tmp.path().join("hub"), Some(&owner().to_string()));
    let t = Instant::now();
    sync_support::seed_chains(&hub, owner(), 0xbe4c, 3, total / 3, 10_000);
    eprintln!("seeded {total} ops in {:.1} s", t.elapsed().as_secs_f64());
    let mut rates = Vec::new();
    let mut rss = Vec::new();
    for run in 0..3 {
        let s = Spoke::new();
        std::fs::create_dir_all(&s.dir).expect("mkdir");
        let t = Instant::now();
        let out = Command::new("/usr/bin/time")
            .arg("-v")
            .arg(heph_bin())
            .arg("--data-dir")
            .arg(&s.dir)
            .args(["sync", "--hub-url", &hub.url()])
            .output()
            .expect("run /usr/bin/time heph sync");
        let secs = t.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        let kb: f64 = err
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Maximum resident set size (kbytes): ")
            })
            .and_then(|v| v.trim().parse().ok())
            .expect("max RSS in /usr/bin/time output");
        let held = s.op_rows();
        assert_eq!(held, total / 3 * 3, "the spoke holds every op");
        let rate = held as f64 / secs;
        eprintln!(
            "run {run}: {held} ops in {secs:.2} s = {rate:.0} ops/s, peak RSS {:.0} MB",
            kb / 1024.0
        );
        rates.push(rate);
        rss.push(kb / 1024.0);
    }
    println!(
        "bring-up {} ops / 3 origins: median {:.0} ops/s, peak RSS median {:.0} MB (max {:.0} MB)",
        total / 3 * 3,
        median(&mut rates),
        median(&mut rss.clone()),
        rss.iter().cloned().fold(0.0, f64::max)
    );
}

fn own_count(db: &std::path::Path, origin: &heph_format::Origin) -> i64 {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open");
    c.query_row(
        "SELECT coalesce(sum(n), 0) FROM op_chunks WHERE origin = ?1",
        [&origin.to_bytes()[..]],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

fn latency() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = Hub::start(&tmp.path().join("hub"), None);
    let mut a = Spoke::new();
    let mut b = Spoke::new();
    a.add("warm-up");
    a.ok(&["sync", "--hub-url", &hub.url()]);
    a.start_daemon(&hub.url());
    b.start_daemon(&hub.url());
    let origin: heph_format::Origin = a.info()["origin"]
        .as_str()
        .expect("origin")
        .parse()
        .expect("ulid");
    assert!(wait_until(Duration::from_secs(10), || own_count(
        &b.db(),
        &origin
    ) >= 2));
    let reader =
        rusqlite::Connection::open_with_flags(b.db(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open");
    let count = |c: &rusqlite::Connection| -> i64 {
        c.query_row(
            "SELECT coalesce(sum(n), 0) FROM op_chunks WHERE origin = ?1",
            [&origin.to_bytes()[..]],
            |r| r.get(0),
        )
        .unwrap_or(0)
    };
    let mut after_ack = Vec::new();
    let mut from_spawn = Vec::new();
    for i in 0..200 {
        let before = count(&reader);
        let t0 = Instant::now();
        a.ok(&["task", &format!("latency probe {i}")]);
        let t1 = Instant::now();
        loop {
            if count(&reader) > before {
                break;
            }
            assert!(
                t1.elapsed() < Duration::from_secs(10),
                "write {i} did not arrive"
            );
            std::thread::sleep(Duration::from_micros(500));
        }
        let t2 = Instant::now();
        after_ack.push((t2 - t1).as_secs_f64() * 1000.0);
        from_spawn.push((t2 - t0).as_secs_f64() * 1000.0);
    }
    println!(
        "propagation over 200 writes: from the CLI's acknowledgement p50 {:.1} ms, p99 {:.1} ms; \
         from spawning the CLI p50 {:.1} ms, p99 {:.1} ms",
        percentile(&mut after_ack, 0.5),
        percentile(&mut after_ack, 0.99),
        percentile(&mut from_spawn, 0.5),
        percentile(&mut from_spawn, 0.99)
    );
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the comm field.
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

fn idle() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = Hub::start(&tmp.path().join("hub"), None);
    let mut a = Spoke::new();
    a.add("idle");
    a.ok(&["sync", "--hub-url", &hub.url()]);
    a.start_daemon(&hub.url());
    std::thread::sleep(Duration::from_secs(2));
    let pid = a.daemon_pid().expect("pid");
    let secs = 30;
    let t0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(secs));
    let t1 = cpu_ticks(pid);
    let hz = 100.0; // USER_HZ on Linux
    let pct = (t1 - t0) as f64 / hz / secs as f64 * 100.0;
    println!(
        "idle daemon over {secs} s: {} CPU ticks = {pct:.2}% of one core",
        t1 - t0
    );
}

/// heph's side of the TaskChampion comparison: N tasks (title + tag) written by one spoke and pushed,
/// then a fresh spoke's `heph sync` bring-up is timed (median of 3).
fn tasks(sizes: &[usize]) {
    use heph_spoke::api::{AddTask, add_task};
    use heph_spoke::sync::{HttpHub, NoProgress, StaticToken, SyncOptions, sync_once};
    for &n in sizes {
        let tmp = tempfile::tempdir().expect("tmp");
        let hub = Hub::start(&tmp.path().join("hub"), None);
        let path = tmp.path().join("writer.db");
        let env = heph_spoke::SystemEnv;
        let mut r = heph_spoke::Replica::open(path.to_str().expect("utf8"), &env).expect("open");
        let t = Instant::now();
        for i in 0..n {
            let req = AddTask {
                title: format!("benchmark task number {i} with a realistic title"),
                tags: vec!["bench".into()],
                ..AddTask::default()
            };
            add_task(&mut r, &env, &req).expect("add");
        }
        let ops = r.op_count().expect("count");
        let cell = std::cell::RefCell::new(r);
        let client = HttpHub::new(&hub.url(), std::rc::Rc::new(StaticToken(None))).expect("client");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(sync_once(
            &cell,
            &client,
            &env,
            &SyncOptions::default(),
            &mut NoProgress,
        ))
        .expect("push");
        eprintln!(
            "heph: created and pushed {n} tasks ({ops} ops) in {:.2} s",
            t.elapsed().as_secs_f64()
        );
        let mut times = Vec::new();
        for _ in 0..3 {
            let s = Spoke::new();
            let t = Instant::now();
            s.ok(&["sync", "--hub-url", &hub.url()]);
            times.push(t.elapsed().as_secs_f64());
            assert_eq!(s.op_rows(), ops, "the fresh spoke holds every op");
        }
        let med = median(&mut times);
        println!(
            "heph bring-up of {n} tasks ({ops} ops, real hub over loopback, whole `heph sync` process): median {med:.3} s = {:.0} tasks/s",
            n as f64 / med
        );
    }
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let all = which.is_empty();
    if all || which.iter().any(|w| w == "bringup") {
        bringup();
    }
    if all || which.iter().any(|w| w == "latency") {
        latency();
    }
    if all || which.iter().any(|w| w == "idle") {
        idle();
    }
    if all || which.iter().any(|w| w == "tasks") {
        tasks(&[10_000, 100_000]);
    }
}
