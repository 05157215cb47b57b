//! Convergence property test: 4 replicas, random concurrent edits (same fields, tags, links, context
//! documents, logs, deletes, completions, undo), random partial deliveries in random orders with
//! duplicates; after a full exchange every replica has the same digest and the same `task.list` JSON,
//! and a rebuild from the op log reproduces it. 300 cases in CI; `HEPH_LONG_TESTS=1` runs 3000.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use heph_spoke::api::{self, AddTask, ContextEdit, EditTask};
use heph_spoke::model::{self, ListFilter};
use heph_spoke::{Replica, StoredOp, TestEnv, rpc};
use proptest::prelude::*;
use serde_json::json;

const N: usize = 4;
const T0: u64 = 1_796_000_000_000;

#[derive(Debug, Clone)]
enum Action {
    Add {
        r: usize,
        title: u8,
    },
    Title {
        r: usize,
        node: usize,
        title: u8,
    },
    Attention {
        r: usize,
        node: usize,
        level: u8,
    },
    Project {
        r: usize,
        node: usize,
        p: u8,
    },
    DoDate {
        r: usize,
        node: usize,
        days: u8,
    },
    Tag {
        r: usize,
        node: usize,
        tag: u8,
        present: bool,
    },
    Link {
        r: usize,
        node: usize,
        other: usize,
        present: bool,
    },
    Log {
        r: usize,
        node: usize,
        text: u8,
    },
    Context {
        r: usize,
        node: usize,
        line: u8,
        how: u8,
        text: u8,
    },
    Delete {
        r: usize,
        node: usize,
        delete: bool,
    },
    Done {
        r: usize,
        node: usize,
    },
    Undo {
        r: usize,
    },
    Sync {
        from: usize,
        to: usize,
        seed: u64,
        keep: u8,
    },
    Tick {
        r: usize,
        ms: u16,
    },
}

fn action() -> impl Strategy<Value = Action> {
    let r = 0..N;
    prop_oneof![
        3 => (r.clone(), any::<u8>()).prop_map(|(r, title)| Action::Add { r, title }),
        3 => (r.clone(), any::<usize>(), 0..4u8).prop_map(|(r, node, title)| Action::Title { r, node, title }),
        2 => (r.clone(), any::<usize>(), 0..5u8).prop_map(|(r, node, level)| Action::Attention { r, node, level }),
        1 => (r.clone(), any::<usize>(), 0..3u8).prop_map(|(r, node, p)| Action::Project { r, node, p }),
        1 => (r.clone(), any::<usize>(), 0..10u8).prop_map(|(r, node, days)| Action::DoDate { r, node, days }),
        3 => (r.clone(), any::<usize>(), 0..3u8, any::<bool>()).prop_map(|(r, node, tag, present)| Action::Tag { r, node, tag, present }),
        2 => (r.clone(), any::<usize>(), any::<usize>(), any::<bool>()).prop_map(|(r, node, other, present)| Action::Link { r, node, other, present }),
        1 => (r.clone(), any::<usize>(), any::<u8>()).prop_map(|(r, node, text)| Action::Log { r, node, text }),
        4 => (r.clone(), any::<usize>(), 0..6u8, 0..3u8, 0..4u8).prop_map(|(r, node, line, how, text)| Action::Context { r, node, line, how, text }),
        1 => (r.clone(), any::<usize>(), any::<bool>()).prop_map(|(r, node, delete)| Action::Delete { r, node, delete }),
        1 => (r.clone(), any::<usize>()).prop_map(|(r, node)| Action::Done { r, node }),
        1 => r.clone().prop_map(|r| Action::Undo { r }),
        4 => (r.clone(), r.clone(), any::<u64>(), any::<u8>()).prop_map(|(from, to, seed, keep)| Action::Sync { from, to, seed, keep }),
        2 => (r, 0..40u16).prop_map(|(r, ms)| Action::Tick { r, ms }),
    ]
}

/// A tiny deterministic generator for shuffles (seeded by proptest).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

fn all_ops(r: &Replica) -> Vec<StoredOp> {
    let mut v = Vec::new();
    for (o, _) in r.origins().unwrap() {
        v.extend(r.ops_since(o, 0, usize::MAX).unwrap());
    }
    v
}

fn node_ids(r: &Replica) -> Vec<String> {
    let mut st = r
        .connection()
        .prepare("SELECT id_text FROM nodes WHERE kind IS NOT NULL ORDER BY id_text")
        .unwrap();
    st.query_map([], |row| row.get(0))
        .unwrap()
        .map(|x| x.unwrap())
        .collect()
}

fn pick(r: &Replica, i: usize) -> Option<String> {
    let ids = node_ids(r);
    if ids.is_empty() {
        None
    } else {
        Some(ids[i % ids.len()].clone())
    }
}

const WORDS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];

fn run(actions: &[Action], final_seed: u64) -> Result<(), TestCaseError> {
    let envs: Vec<TestEnv> = (0..N).map(|i| TestEnv::new(T0, i as u64 + 1)).collect();
    let first = Replica::open_in_memory(&envs[0]).unwrap();
    let owner = first.owner();
    let mut reps = vec![first];
    for env in envs.iter().skip(1) {
        reps.push(Replica::open_in_memory_with_owner(owner, env).unwrap());
    }
    for a in actions {
        // Errors (e.g. "already done") are allowed; they must leave the store unchanged, which the
        // final digests check indirectly. Panics are not allowed.
        match a.clone() {
            Action::Add { r, title } => {
                let _ = api::add_task(
                    &mut reps[r],
                    &envs[r],
                    &AddTask {
                        title: format!("task {title}"),
                        ..Default::default()
                    },
                );
            }
            Action::Title { r, node, title } => {
                if let Some(id) = pick(&reps[r], node) {
                    let _ = api::edit_task(
                        &mut reps[r],
                        &envs[r],
                        &EditTask {
                            id,
                            title: Some(WORDS[title as usize].into()),
                            ..Default::default()
                        },
                    );
                }
            }
            Action::Attention { r, node, level } => {
                if let Some(id) = pick(&reps[r], node) {
                    let a = ["a1", "a2", "a3", "a4", "none"][level as usize];
                    let _ = api::edit_task(
                        &mut reps[r],
                        &envs[r],
                        &EditTask {
                            id,
                            attention: Some(a.into()),
                            ..Default::default()
                        },
                    );
                }
            }
            Action::Project { r, node, p } => {
                if let Some(id) = pick(&reps[r], node) {
                    let p = ["home", "work", "none"][p as usize];
                    let _ = api::edit_task(
                        &mut reps[r],
                        &envs[r],
                        &EditTask {
                            id,
                            project: Some(p.into()),
                            ..Default::default()
                        },
                    );
                }
            }
            Action::DoDate { r, node, days } => {
                if let Some(id) = pick(&reps[r], node) {
                    let d = if days == 0 {
                        "none".to_owned()
                    } else {
                        format!("+{days}d")
                    };
                    let _ = api::edit_task(
                        &mut reps[r],
                        &envs[r],
                        &EditTask {
                            id,
                            do_date: Some(d),
                            ..Default::default()
                        },
                    );
                }
            }
            Action::Tag {
                r,
                node,
                tag,
                present,
            } => {
                if let Some(id) = pick(&reps[r], node) {
                    let _ = api::tag(&mut reps[r], &envs[r], &id, WORDS[tag as usize], present);
                }
            }
            Action::Link {
                r,
                node,
                other,
                present,
            } => {
                if let (Some(a), Some(b)) = (pick(&reps[r], node), pick(&reps[r], other)) {
                    let _ = api::link(
                        &mut reps[r],
                        &envs[r],
                        &a,
                        &b,
                        Some(if other % 2 == 0 { "blocks" } else { "related" }),
                        present,
                    );
                }
            }
            Action::Log { r, node, text } => {
                if let Some(id) = pick(&reps[r], node) {
                    let _ = api::log(&mut reps[r], &envs[r], &id, &format!("entry {text}"));
                }
            }
            Action::Context {
                r,
                node,
                line,
                how,
                text,
            } => {
                if let Some(id) = pick(&reps[r], node) {
                    let cur = model::node_detail(&reps[r], &envs[r], id.parse().unwrap())
                        .unwrap()
                        .context;
                    let mut lines: Vec<String> = cur.lines().map(str::to_owned).collect();
                    let w = format!("{} {}", WORDS[text as usize], r);
                    let k = line as usize % (lines.len() + 1);
                    match how {
                        0 => lines.insert(k, w),
                        1 if k < lines.len() => lines[k] = w,
                        _ if k < lines.len() => {
                            lines.remove(k);
                        }
                        _ => lines.push(w),
                    }
                    let mut body = lines.join("\n");
                    body.push('\n');
                    let _ = api::context(
                        &mut reps[r],
                        &envs[r],
                        &ContextEdit {
                            id,
                            body: Some(body),
                            append: None,
                        },
                    );
                }
            }
            Action::Delete { r, node, delete } => {
                if let Some(id) = pick(&reps[r], node) {
                    let _ = api::set_deleted(&mut reps[r], &envs[r], &id, delete);
                }
            }
            Action::Done { r, node } => {
                if let Some(id) = pick(&reps[r], node) {
                    let _ = api::done(&mut reps[r], &envs[r], &id);
                }
            }
            Action::Undo { r } => {
                let _ = api::undo(&mut reps[r], &envs[r]);
            }
            Action::Sync {
                from,
                to,
                seed,
                keep,
            } => {
                if from != to {
                    let mut ops = all_ops(&reps[from]);
                    let mut rng = Rng(seed | 1);
                    rng.shuffle(&mut ops);
                    let n = ops.len() * (keep as usize % 4 + 1) / 4;
                    ops.truncate(n);
                    reps[to].apply_stored(&ops, None).unwrap();
                }
            }
            Action::Tick { r, ms } => envs[r].advance(u64::from(ms)),
        }
    }
    // Full exchange: every replica receives the union in its own random order, in chunks, with duplicates.
    let mut union: Vec<StoredOp> = Vec::new();
    for r in &reps {
        union.extend(all_ops(r));
    }
    let mut rng = Rng(final_seed | 1);
    for r in reps.iter_mut() {
        let mut ops = union.clone();
        rng.shuffle(&mut ops);
        let cut = (rng.next() % (ops.len() as u64 + 1)) as usize;
        let (a, b) = ops.split_at(cut);
        r.apply_stored(b, None).unwrap();
        r.apply_stored(a, None).unwrap();
        r.apply_stored(&ops[..ops.len() / 3], None).unwrap();
    }
    let d0 = reps[0].digest().unwrap();
    let all = json!({ "state": "all", "include_notes": true });
    let l0 = rpc::dispatch(&mut reps[0], &envs[0], "task.list", all.clone()).unwrap();
    let c0 = model::conflicts(&reps[0], &envs[0]).unwrap();
    for i in 1..N {
        prop_assert_eq!(
            reps[i].digest().unwrap(),
            d0,
            "replica {} digest differs",
            i
        );
        let li = rpc::dispatch(&mut reps[i], &envs[i], "task.list", all.clone()).unwrap();
        prop_assert_eq!(&li, &l0, "replica {} list differs", i);
        prop_assert_eq!(&model::conflicts(&reps[i], &envs[i]).unwrap(), &c0);
    }
    let _ = model::list(&reps[0], &envs[0], &ListFilter::default()).unwrap();
    let (before, after) = reps[0].doctor().unwrap();
    prop_assert_eq!(before, after, "rebuild from the op log changed the state");
    Ok(())
}

fn cases() -> u32 {
    if std::env::var_os("HEPH_LONG_TESTS").is_some_and(|v| v == "1") {
        3000
    } else {
        300
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn four_replicas_converge(actions in prop::collection::vec(action(), 1..40), seed in any::<u64>()) {
        run(&actions, seed)?;
    }
}
