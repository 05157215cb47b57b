//! Deterministic sample ops: a realistic task-model mix for fixtures, benchmarks and tests.
//!
//! "Typical" here means the mix a person's task life produces: per task one create, a title, a
//! project and a do date, sometimes attention, a tag, a log entry, a state change; a context
//! document on some. Everything is derived from a seed with a tiny PRNG, so the output is stable.

use crate::hlc::Hlc;
use crate::id::{NodeId, Origin, OwnerId};
use crate::op::{Attention, Field, NodeKind, Op, OpKind, TaskState};

/// A small deterministic PRNG (SplitMix64): no dependency, identical on every platform.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Ten pseudo-random bytes (the random part of a ULID).
    pub fn ten(&mut self) -> [u8; 10] {
        let a = self.next_u64().to_le_bytes();
        let b = self.next_u64().to_le_bytes();
        let mut out = [0u8; 10];
        out[..8].copy_from_slice(&a);
        out[8..].copy_from_slice(&b[..2]);
        out
    }
}

/// A fixed owner for samples.
pub fn sample_owner() -> OwnerId {
    OwnerId::from_parts(1_767_225_600_000, [0x11; 10])
}

/// A fixed origin for samples.
pub fn sample_origin() -> Origin {
    Origin::from_parts(1_767_225_600_000, [0x22; 10])
}

const WORDS: &[&str] = &[
    "call",
    "plumber",
    "review",
    "draft",
    "invoice",
    "garden",
    "renew",
    "passport",
    "email",
    "dentist",
    "fix",
    "bike",
    "write",
    "notes",
    "plan",
    "trip",
    "buy",
    "groceries",
    "backup",
    "laptop",
    "read",
    "paper",
    "book",
    "flights",
    "pay",
    "rent",
    "update",
    "resume",
    "clean",
    "kitchen",
];
const PROJECTS: &[&str] = &["home", "work", "health", "finance", "travel", "heph"];
const TAGS: &[&str] = &["errand", "phone", "deep", "quick", "waiting", "someday"];

fn phrase(rng: &mut SplitMix, words: u64) -> String {
    let n = 2 + rng.below(words);
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    s
}

/// `count` ops of one origin, strictly increasing clocks starting at `start_ms`, in a realistic mix.
pub fn typical_ops(origin: Origin, start_ms: u64, count: usize, seed: u64) -> Vec<Op> {
    let mut rng = SplitMix(seed);
    let mut ops = Vec::with_capacity(count);
    let mut nodes: Vec<NodeId> = Vec::new();
    let mut wall = start_ms;
    let mut counter = 0u32;
    while ops.len() < count {
        // Clocks: mostly a few ms to a few seconds apart, sometimes within the same millisecond.
        if rng.below(4) == 0 {
            counter += 1;
        } else {
            wall += 1 + rng.below(5_000);
            counter = 0;
        }
        let hlc = Hlc {
            wall_ms: wall,
            counter,
            origin,
        };
        let roll = rng.below(100);
        let op = if nodes.is_empty() || roll < 18 {
            let node = NodeId::from_parts(wall, rng.ten());
            nodes.push(node);
            Op {
                hlc,
                node,
                kind: OpKind::Create {
                    kind: NodeKind::Task,
                },
            }
        } else {
            // Recent nodes are touched most.
            let back = rng.below(nodes.len().min(20) as u64) as usize;
            let node = nodes[nodes.len() - 1 - back];
            let kind = match roll {
                18..=33 => OpKind::Set(Field::Title(phrase(&mut rng, 4))),
                34..=45 => OpKind::Set(Field::Project(Some(
                    PROJECTS[rng.below(PROJECTS.len() as u64) as usize].to_owned(),
                ))),
                46..=57 => OpKind::Set(Field::DoDate(Some(
                    (wall / 86_400_000 + rng.below(14)) as i64 * 86_400_000,
                ))),
                58..=63 => OpKind::Set(Field::Attention(Some(
                    [Attention::A1, Attention::A2, Attention::A3, Attention::A4]
                        [rng.below(4) as usize],
                ))),
                64..=73 => OpKind::Tag {
                    tag: TAGS[rng.below(TAGS.len() as u64) as usize].to_owned(),
                    present: rng.below(5) != 0,
                },
                74..=83 => OpKind::Log {
                    text: phrase(&mut rng, 8),
                },
                84..=91 => OpKind::Set(Field::State(if rng.below(6) == 0 {
                    TaskState::Dropped
                } else {
                    TaskState::Done
                })),
                92..=94 => OpKind::Context {
                    base: None,
                    text: format!("# {}\n\n{}\n", phrase(&mut rng, 3), phrase(&mut rng, 12)),
                },
                95..=97 => OpKind::Link {
                    target: nodes[rng.below(nodes.len() as u64) as usize],
                    link_kind: "related".to_owned(),
                    present: true,
                },
                _ => OpKind::Set(Field::Recurrence(Some("FREQ=WEEKLY;INTERVAL=1".to_owned()))),
            };
            Op { hlc, node, kind }
        };
        ops.push(op);
    }
    ops
}

/// Ops that use every op kind and every field variant once: what the golden fixtures pin.
pub fn every_variant_ops(origin: Origin, start_ms: u64) -> Vec<Op> {
    let node = NodeId::from_parts(start_ms, [0x33; 10]);
    let other = NodeId::from_parts(start_ms, [0x44; 10]);
    let kinds = vec![
        (
            node,
            OpKind::Create {
                kind: NodeKind::Task,
            },
        ),
        (
            other,
            OpKind::Create {
                kind: NodeKind::Note,
            },
        ),
        (
            NodeId::from_parts(start_ms, [0x55; 10]),
            OpKind::Create {
                kind: NodeKind::Project,
            },
        ),
        (node, OpKind::Set(Field::Title("Renew passport".to_owned()))),
        (node, OpKind::Set(Field::State(TaskState::Outstanding))),
        (node, OpKind::Set(Field::DoDate(Some(1_767_312_000_000)))),
        (node, OpKind::Set(Field::LateOn(Some(1_767_657_600_000)))),
        (
            node,
            OpKind::Set(Field::Recurrence(Some("FREQ=DAILY;INTERVAL=3".to_owned()))),
        ),
        (node, OpKind::Set(Field::Attention(Some(Attention::A2)))),
        (node, OpKind::Set(Field::Project(Some("travel".to_owned())))),
        (node, OpKind::Set(Field::Series(Some(node)))),
        (node, OpKind::Set(Field::DoDate(None))),
        (
            node,
            OpKind::Tag {
                tag: "errand".to_owned(),
                present: true,
            },
        ),
        (
            node,
            OpKind::Tag {
                tag: "errand".to_owned(),
                present: false,
            },
        ),
        (
            node,
            OpKind::Link {
                target: other,
                link_kind: "related".to_owned(),
                present: true,
            },
        ),
        (
            node,
            OpKind::Log {
                text: "Booked the appointment — ünïcode ok".to_owned(),
            },
        ),
        (
            node,
            OpKind::Context {
                base: None,
                text: "# Passport\n\n- photo\n- form\n".to_owned(),
            },
        ),
        (
            node,
            OpKind::Context {
                base: Some(Hlc {
                    wall_ms: start_ms + 16,
                    counter: 0,
                    origin,
                }),
                text: "# Passport\n\n- photo\n- form\n- fee\n".to_owned(),
            },
        ),
        (node, OpKind::Set(Field::State(TaskState::Done))),
        (other, OpKind::Delete),
        (other, OpKind::Restore),
        (node, OpKind::Set(Field::State(TaskState::Dropped))),
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, (node, kind))| Op {
            hlc: Hlc {
                wall_ms: start_ms + i as u64,
                counter: 0,
                origin,
            },
            node,
            kind,
        })
        .collect()
}
