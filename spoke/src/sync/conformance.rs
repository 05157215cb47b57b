//! The one conformance suite every [`HubClient`] implementation runs (the in-memory hub in unit tests,
//! the HTTP client against a real `hephd --mode server` in `tests/tests/sync_conformance.rs`).
//!
//! Test support: failures panic with a message naming the broken rule.

use heph_format::{
    EncodedSegment, Origin, OwnerId, SegmentId, encode_segment, sample::typical_ops,
};

use super::hub::{HubClient, HubError, PushOutcome};

/// A deterministic origin for conformance run `salt`, number `n`.
pub fn origin(salt: u64, n: u8) -> Origin {
    let mut r = [n; 10];
    r[..8].copy_from_slice(&salt.to_le_bytes());
    Origin::from_parts(1_767_225_600_000 + u64::from(n), r)
}

/// Segment `k` (0-based, `ops` ops each) of `origin`'s chain; `prev` is segment `k - 1`'s id.
pub fn segment(
    owner: OwnerId,
    origin: Origin,
    k: u64,
    ops: usize,
    prev: Option<SegmentId>,
    seed: u64,
) -> EncodedSegment {
    let all = typical_ops(origin, 1_767_225_600_000 + k * 10_000_000, ops, seed ^ k);
    let r = encode_segment(owner, origin, 1 + k * ops as u64, prev, &all);
    match r {
        Ok(s) => s,
        Err(e) => panic!("conformance: cannot encode a sample segment: {e}"),
    }
}

async fn push(hub: &dyn HubClient, s: &EncodedSegment) -> Result<PushOutcome, HubError> {
    hub.push(s.header.origin, s.header.first_seq, s.id, &s.bytes)
        .await
}

/// Runs every rule against `hub`, which must serve `owner` (or have no owner yet) and must not hold
/// segments of the origins derived from `salt`.
pub async fn run(hub: &dyn HubClient, owner: OwnerId, salt: u64) {
    let a = origin(salt, 1);
    let b = origin(salt, 2);
    let cfg = hub.config().await.expect("conformance: /config answers");
    assert!(
        cfg.owner.is_none() || cfg.owner == Some(owner),
        "conformance: hub owner is {:?}",
        cfg.owner
    );

    let before = hub.heads().await.expect("conformance: heads answers");
    assert!(
        !before.origins.contains_key(&a),
        "conformance: fresh origin has no head"
    );

    // Push, idempotent re-push, heads.
    let s0 = segment(owner, a, 0, 20, None, salt);
    assert_eq!(
        push(hub, &s0).await,
        Ok(PushOutcome::Stored),
        "conformance: first push is stored"
    );
    assert_eq!(
        push(hub, &s0).await,
        Ok(PushOutcome::Exists),
        "conformance: identical re-push is a no-op success"
    );
    let s1 = segment(owner, a, 1, 20, Some(s0.id), salt);
    assert_eq!(
        push(hub, &s1).await,
        Ok(PushOutcome::Stored),
        "conformance: second push is stored"
    );
    let heads = hub.heads().await.expect("conformance: heads answers");
    assert_eq!(
        heads.owner,
        Some(owner),
        "conformance: the hub adopted the first pusher's owner"
    );
    let h = heads
        .origins
        .get(&a)
        .copied()
        .expect("conformance: pushed origin has a head");
    assert_eq!(
        (h.last_seq, h.hash, h.segments),
        (40, s1.id, 2),
        "conformance: head after two pushes"
    );
    assert_ne!(
        heads.tag, before.tag,
        "conformance: the tag changes with the heads"
    );

    // Refusals: gap, occupied, fork, hash mismatch, malformed, wrong owner.
    let s3 = segment(owner, a, 3, 20, Some(s1.id), salt);
    match push(hub, &s3).await {
        Err(HubError::Gap {
            expected_first_seq,
            head,
            ..
        }) => {
            assert_eq!(
                expected_first_seq, 41,
                "conformance: gap names the expected first_seq"
            );
            assert_eq!(
                head.map(|h| h.last_seq),
                Some(40),
                "conformance: gap names the head"
            );
        }
        other => panic!("conformance: a gap must be refused as gap, got {other:?}"),
    }
    let other0 = segment(owner, a, 0, 20, None, salt ^ 0xdead);
    match push(hub, &other0).await {
        Err(HubError::Occupied { head, .. }) => {
            assert_eq!(
                head.map(|h| h.hash),
                Some(s1.id),
                "conformance: occupied names the head"
            )
        }
        other => panic!(
            "conformance: a different segment at an occupied position must be occupied, got {other:?}"
        ),
    }
    let forked = segment(owner, a, 2, 20, Some(s0.id), salt);
    assert!(
        matches!(push(hub, &forked).await, Err(HubError::Fork { .. })),
        "conformance: a wrong prev must be refused as fork"
    );
    let s2 = segment(owner, a, 2, 20, Some(s1.id), salt);
    match hub.push(a, 41, SegmentId([7; 32]), &s2.bytes).await {
        Err(HubError::Rejected { code, .. }) => {
            assert_eq!(code, "hash_mismatch", "conformance: hash mismatch code")
        }
        other => panic!("conformance: a wrong id must be refused as hash_mismatch, got {other:?}"),
    }
    let garbage = b"this is not a segment at all, not even close to one, no no no no no no no no no no no no no no no no no no no no no no no no no no no".to_vec();
    match hub.push(a, 41, SegmentId::of(&garbage), &garbage).await {
        Err(HubError::Rejected { code, .. }) => {
            assert_eq!(code, "malformed", "conformance: malformed code")
        }
        other => panic!("conformance: garbage must be refused as malformed, got {other:?}"),
    }
    let stranger = OwnerId::from_parts(1_600_000_000_000, [0xee; 10]);
    let foreign = segment(stranger, b, 0, 5, None, salt);
    match push(hub, &foreign).await {
        Err(HubError::WrongOwner { hub_owner, .. }) => {
            assert_eq!(
                hub_owner,
                Some(owner),
                "conformance: wrong_owner names the hub's owner"
            )
        }
        other => panic!("conformance: another owner's segment must be wrong_owner, got {other:?}"),
    }
    let after_refusals = hub.heads().await.expect("conformance: heads answers");
    assert_eq!(
        after_refusals.origins.get(&a),
        Some(&h),
        "conformance: refusals store nothing"
    );
    assert!(
        !after_refusals.origins.contains_key(&b),
        "conformance: refused origin stays absent"
    );

    // List and blobs.
    assert_eq!(
        push(hub, &s2).await,
        Ok(PushOutcome::Stored),
        "conformance: third push is stored"
    );
    let all = hub
        .list(a, 0, 1000)
        .await
        .expect("conformance: list answers");
    let ids: Vec<SegmentId> = all.segments.iter().map(|e| e.hash).collect();
    assert_eq!(
        ids,
        vec![s0.id, s1.id, s2.id],
        "conformance: list in chain order"
    );
    assert!(!all.more, "conformance: no more after everything");
    assert_eq!(all.segments[1].first_seq, 21, "conformance: list first_seq");
    assert_eq!(all.segments[1].last_seq, 40, "conformance: list last_seq");
    assert_eq!(
        all.segments[1].len,
        s1.bytes.len() as u64,
        "conformance: list len"
    );
    let page = hub.list(a, 20, 1).await.expect("conformance: list answers");
    assert_eq!(page.segments.len(), 1, "conformance: limit is honoured");
    assert_eq!(
        page.segments[0].hash, s1.id,
        "conformance: after skips held segments"
    );
    assert!(page.more, "conformance: more is set when segments remain");
    let none = hub
        .list(b, 0, 10)
        .await
        .expect("conformance: list of an unknown origin answers");
    assert!(
        none.segments.is_empty() && none.head.is_none(),
        "conformance: unknown origin lists nothing"
    );
    assert_eq!(
        hub.blob(s1.id).await.as_deref(),
        Ok(&s1.bytes[..]),
        "conformance: blob returns the bytes"
    );
    assert!(
        matches!(
            hub.blob(SegmentId([9; 32])).await,
            Err(HubError::NotFound { .. })
        ),
        "conformance: unknown blob is not found"
    );

    // Stream.
    let b0 = segment(owner, b, 0, 7, None, salt);
    assert_eq!(
        push(hub, &b0).await,
        Ok(PushOutcome::Stored),
        "conformance: push to a second origin"
    );
    let got = collect(hub, &[], &[a, b]).await;
    assert_eq!(
        got,
        vec![s0.id, s1.id, s2.id, b0.id],
        "conformance: stream origin by origin, in chain order"
    );
    let got = collect(hub, &[(a, 20)], &[a]).await;
    assert_eq!(
        got,
        vec![s1.id, s2.id],
        "conformance: stream honours after and origin"
    );
    let got = collect(hub, &[(a, 60), (b, 7)], &[a, b]).await;
    assert!(
        got.is_empty(),
        "conformance: stream after the heads is empty"
    );

    // Wait.
    let now = hub.heads().await.expect("conformance: heads answers");
    let w = hub
        .wait(Some(&now.tag), 1)
        .await
        .expect("conformance: wait answers");
    assert!(
        !w.changed,
        "conformance: wait with the current tag reports no change"
    );
    assert_eq!(
        w.heads.tag, now.tag,
        "conformance: unchanged wait returns the current heads"
    );
    let w = hub
        .wait(Some(&before.tag), 1)
        .await
        .expect("conformance: wait answers");
    assert!(
        w.changed,
        "conformance: wait with an old tag reports a change at once"
    );
}

async fn collect(hub: &dyn HubClient, after: &[(Origin, u64)], only: &[Origin]) -> Vec<SegmentId> {
    let mut s = hub
        .stream(after, only)
        .await
        .expect("conformance: stream answers");
    let mut out = Vec::new();
    while let Some((id, bytes)) = s
        .next_segment()
        .await
        .expect("conformance: stream frames are complete")
    {
        assert_eq!(
            SegmentId::of(&bytes),
            id,
            "conformance: stream frame ids match their bytes"
        );
        out.push(id);
    }
    out
}
