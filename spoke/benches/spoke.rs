//! Spoke benchmarks (release): foreign-op apply rate into a store that ends with 100,000 tasks, and
//! in-process list / search timings. With `HEPH_BENCH_STORE=DIR` it also leaves that store in
//! `DIR/heph.db` for the whole-process CLI measurements with hyperfine (see docs/benchmarks.md).
//!
//! Run: `cargo bench -p heph-spoke --bench spoke`.

use std::time::Instant;

use heph_format::{Attention, Clock, Field, NodeId, NodeKind, Op, OpKind, Origin, TaskState};
use heph_spoke::model::{self, ListFilter};
use heph_spoke::sync::APPLY_BATCH_OPS;
use heph_spoke::{Replica, TestEnv};

const TASKS: u64 = 100_000;
const OUTSTANDING_EVERY: u64 = 10; // 10,000 outstanding
const SEGMENT: usize = 1000;
const WORDS: [&str; 16] = [
    "garden", "invoice", "report", "kitchen", "call", "email", "review", "plan", "fix", "buy",
    "write", "read", "clean", "book", "pay", "renew",
];

fn ops_for_origin(origin: Origin, start: u64, count: u64) -> Vec<Op> {
    let mut clock = Clock::new(origin);
    let mut ops = Vec::with_capacity(count as usize * 7);
    let base = 1_796_000_000_000u64;
    for i in start..start + count {
        let now = base + i;
        let node = NodeId::from_parts(now, {
            let mut r = [0u8; 10];
            r[..8].copy_from_slice(&i.to_be_bytes());
            r[8] = origin.to_bytes()[15];
            r
        });
        let mut push = |kind| {
            let hlc = clock.tick(now);
            ops.push(Op { hlc, node, kind });
        };
        push(OpKind::Create {
            kind: NodeKind::Task,
        });
        let title = format!(
            "{} {} {} #{i}",
            WORDS[(i % 16) as usize],
            WORDS[(i / 16 % 16) as usize],
            WORDS[(i / 256 % 16) as usize]
        );
        push(OpKind::Set(Field::Title(title)));
        push(OpKind::Set(Field::Project(Some(format!(
            "project {}",
            i % 50
        )))));
        push(OpKind::Set(Field::DoDate(Some((base + i * 60_000) as i64))));
        push(OpKind::Set(Field::Attention(Some(
            [Attention::A1, Attention::A2, Attention::A3, Attention::A4][(i % 4) as usize],
        ))));
        push(OpKind::Tag {
            tag: WORDS[(i % 7) as usize].to_owned(),
            present: true,
        });
        if i % OUTSTANDING_EVERY != 0 {
            push(OpKind::Set(Field::State(TaskState::Done)));
        }
    }
    ops
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // Ops from 4 origins (devices), 25,000 tasks each.
    let origins: Vec<Origin> = (1..=4u8)
        .map(|n| Origin::from_parts(1_700_000_000_000, [n; 10]))
        .collect();
    let per = TASKS / origins.len() as u64;
    let streams: Vec<(Origin, Vec<Op>)> = origins
        .iter()
        .enumerate()
        .map(|(k, &o)| (o, ops_for_origin(o, k as u64 * per, per)))
        .collect();
    let total_ops: usize = streams.iter().map(|(_, v)| v.len()).sum();
    let env = TestEnv::new(1_797_000_000_000, 9);
    let runs = std::env::var("HEPH_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3usize);
    let mut rates = Vec::new();
    let keep = std::env::var_os("HEPH_BENCH_STORE");
    let mut last_dir = None;
    for run in 0..runs {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("heph.db");
        let mut r = Replica::open(path.to_str().expect("utf-8 path"), &env).expect("open");
        let t = Instant::now();
        r.set_bulk_apply(true).expect("bulk mode");
        // Bring-up order: origin by origin, segment by segment, in the transactions the sync engine
        // applies them in (whole segments, `APPLY_BATCH_OPS` ops per transaction).
        for (origin, ops) in &streams {
            let per_tx = APPLY_BATCH_OPS.div_ceil(SEGMENT) * SEGMENT;
            for (k, chunk) in ops.chunks(per_tx).enumerate() {
                r.apply_foreign(*origin, (k * per_tx) as u64 + 1, chunk, None)
                    .expect("apply");
            }
        }
        r.set_bulk_apply(false).expect("normal mode");
        let secs = t.elapsed().as_secs_f64();
        let rate = total_ops as f64 / secs;
        println!(
            "run {run}: applied {total_ops} foreign ops into {TASKS} tasks in {secs:.2} s = {rate:.0} ops/s"
        );
        rates.push(rate);
        last_dir = Some((dir, r));
    }
    println!(
        "foreign-op apply (median of {runs}): {:.0} ops/s",
        median(rates)
    );
    let (dir, r) = last_dir.expect("at least one run");

    let time = |label: &str, f: &mut dyn FnMut()| {
        let mut v = Vec::new();
        for _ in 0..15 {
            let t = Instant::now();
            f();
            v.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!("{label}: median {:.2} ms", median(v));
    };
    time(
        "in-process list (10,000 outstanding of 100,000) to JSON",
        &mut || {
            let l = model::list(&r, &env, &ListFilter::default()).expect("list");
            assert_eq!(l.len(), 10_000);
            let _ = serde_json::to_string_pretty(&l).expect("json");
        },
    );
    for q in ["invoice kitchen", "renew", "garden report clean"] {
        time(&format!("in-process search {q:?}"), &mut || {
            let h = model::search(&r, &env, q, 20).expect("search");
            assert!(!h.is_empty());
        });
    }
    if let Some(target) = keep {
        let target = std::path::PathBuf::from(target);
        std::fs::create_dir_all(&target).expect("create HEPH_BENCH_STORE");
        r.connection()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("checkpoint");
        drop(r);
        std::fs::copy(dir.path().join("heph.db"), target.join("heph.db")).expect("copy store");
        println!(
            "left the 100,000-task store in {}",
            target.join("heph.db").display()
        );
    }
}
