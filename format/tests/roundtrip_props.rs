//! Property tests: any op list round-trips through a segment; any bytes decode without panicking.

use heph_format::sample::{sample_origin, sample_owner};
use heph_format::{
    Attention, DecodeLimits, Field, Hlc, NodeId, NodeKind, Op, OpKind, SegmentId, TaskState,
    decode_header, decode_segment, encode_segment,
};
use proptest::prelude::*;

fn node() -> impl Strategy<Value = NodeId> {
    any::<[u8; 16]>().prop_map(NodeId::from_bytes)
}

fn opt_i64() -> impl Strategy<Value = Option<i64>> {
    proptest::option::of(any::<i64>())
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        ".{0,40}".prop_map(Field::Title),
        prop_oneof![
            Just(TaskState::Outstanding),
            Just(TaskState::Done),
            Just(TaskState::Dropped)
        ]
        .prop_map(Field::State),
        opt_i64().prop_map(Field::DoDate),
        opt_i64().prop_map(Field::LateOn),
        proptest::option::of("[A-Z=;0-9]{0,30}").prop_map(Field::Recurrence),
        proptest::option::of(prop_oneof![
            Just(Attention::A1),
            Just(Attention::A2),
            Just(Attention::A3),
            Just(Attention::A4)
        ])
        .prop_map(Field::Attention),
        proptest::option::of(".{0,20}").prop_map(Field::Project),
        proptest::option::of(node()).prop_map(Field::Series),
    ]
}

fn kind() -> impl Strategy<Value = OpKind> {
    prop_oneof![
        prop_oneof![
            Just(NodeKind::Task),
            Just(NodeKind::Note),
            Just(NodeKind::Project)
        ]
        .prop_map(|kind| OpKind::Create { kind }),
        field().prop_map(OpKind::Set),
        (".{0,12}", any::<bool>()).prop_map(|(tag, present)| OpKind::Tag { tag, present }),
        (node(), "[a-z]{0,10}", any::<bool>()).prop_map(|(target, link_kind, present)| {
            OpKind::Link {
                target,
                link_kind,
                present,
            }
        }),
        ".{0,80}".prop_map(|text| OpKind::Log { text }),
        (
            proptest::option::of((any::<u64>(), any::<u32>())),
            ".{0,200}"
        )
            .prop_map(|(base, text)| {
                OpKind::Context {
                    base: base.map(|(w, c)| Hlc {
                        wall_ms: w,
                        counter: c,
                        origin: sample_origin(),
                    }),
                    text,
                }
            }),
        Just(OpKind::Delete),
        Just(OpKind::Restore),
    ]
}

/// Strictly increasing clocks built from (delta, counter-bump) steps.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec((0u64..10_000, any::<bool>(), node(), kind()), 1..60).prop_map(
        |steps| {
            let mut wall = 1_700_000_000_000u64;
            let mut counter = 0u32;
            steps
                .into_iter()
                .enumerate()
                .map(|(i, (delta, same_ms, node, kind))| {
                    if i > 0 && (same_ms || delta == 0) {
                        counter += 1;
                    } else if i > 0 {
                        wall += delta;
                        counter = 0;
                    }
                    Op {
                        hlc: Hlc {
                            wall_ms: wall,
                            counter,
                            origin: sample_origin(),
                        },
                        node,
                        kind,
                    }
                })
                .collect()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_ops_round_trip(ops in ops(), first_seq in 1u64..1_000_000) {
        let prev = (first_seq > 1).then(|| SegmentId::of(&first_seq.to_le_bytes()));
        let enc = encode_segment(sample_owner(), sample_origin(), first_seq, prev, &ops).expect("encode");
        prop_assert_eq!(enc.id, SegmentId::of(&enc.bytes));
        let seg = decode_segment(&enc.bytes, &DecodeLimits::DEFAULT).expect("decode");
        prop_assert_eq!(seg.header, enc.header);
        prop_assert_eq!(seg.header.last_seq(), first_seq + ops.len() as u64 - 1);
        prop_assert_eq!(seg.ops, ops);
    }

    #[test]
    fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode_segment(&bytes, &DecodeLimits::DEFAULT);
    }

    #[test]
    fn corrupted_valid_segments_never_panic(ops in ops(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let enc = encode_segment(sample_owner(), sample_origin(), 1, None, &ops).expect("encode");
        let mut bytes = enc.bytes;
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= v | 1;
        }
        let _ = decode_header(&bytes, &DecodeLimits::DEFAULT);
        let _ = decode_segment(&bytes, &DecodeLimits::DEFAULT);
    }
}
