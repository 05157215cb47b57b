//! Merge-rule unit tests: one per rule of the brief, each with two or more replicas exchanging ops.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use heph_format::Origin;
use heph_spoke::api::{self, AddTask, ContextEdit, EditTask};
use heph_spoke::model::{self, ListFilter};
use heph_spoke::{Replica, StoredOp, TestEnv};

const T0: u64 = 1_796_000_000_000; // 2026-11-29

fn pair() -> (Replica, TestEnv, Replica, TestEnv) {
    let ea = TestEnv::new(T0, 1);
    let eb = TestEnv::new(T0, 2);
    let a = Replica::open_in_memory(&ea).unwrap();
    let b = Replica::open_in_memory_with_owner(a.owner(), &eb).unwrap();
    (a, ea, b, eb)
}

fn all_ops(r: &Replica) -> Vec<StoredOp> {
    let mut v = Vec::new();
    for (o, _) in r.origins().unwrap() {
        v.extend(r.ops_since(o, 0, usize::MAX).unwrap());
    }
    v
}

/// Sends every op `from` holds to `to`.
fn sync(from: &Replica, to: &mut Replica) {
    let ops = all_ops(from);
    to.apply_stored(&ops, None).unwrap();
}

fn both(a: &mut Replica, b: &mut Replica) {
    sync(a, b);
    sync(b, a);
    assert_eq!(
        a.digest().unwrap(),
        b.digest().unwrap(),
        "replicas diverged"
    );
}

fn add(r: &mut Replica, env: &TestEnv, title: &str) -> String {
    api::add_task(
        r,
        env,
        &AddTask {
            title: title.into(),
            ..Default::default()
        },
    )
    .unwrap()
    .id
}

#[test]
fn lww_per_field_by_hlc() {
    let (mut a, ea, mut b, eb) = pair();
    let id = add(&mut a, &ea, "first");
    both(&mut a, &mut b);
    ea.advance(10);
    eb.advance(20);
    api::edit_task(
        &mut a,
        &ea,
        &EditTask {
            id: id.clone(),
            title: Some("from a".into()),
            ..Default::default()
        },
    )
    .unwrap();
    // b edits the title later (greater HLC) and the project (only b touches it).
    api::edit_task(
        &mut b,
        &eb,
        &EditTask {
            id: id.clone(),
            title: Some("from b".into()),
            project: Some("home".into()),
            ..Default::default()
        },
    )
    .unwrap();
    ea.advance(30);
    api::edit_task(
        &mut a,
        &ea,
        &EditTask {
            id: id.clone(),
            attention: Some("a1".into()),
            ..Default::default()
        },
    )
    .unwrap();
    both(&mut a, &mut b);
    let v = model::list(&a, &ea, &ListFilter::default()).unwrap();
    assert_eq!(v[0].title, "from b");
    assert_eq!(v[0].project.as_deref(), Some("home"));
    assert_eq!(v[0].attention.as_deref(), Some("a1"));
}

#[test]
fn tags_and_links_are_per_element() {
    let (mut a, ea, mut b, eb) = pair();
    let id = add(&mut a, &ea, "t");
    let other = add(&mut a, &ea, "other");
    both(&mut a, &mut b);
    api::tag(&mut a, &ea, &id, "x", true).unwrap();
    api::tag(&mut b, &eb, &id, "y", true).unwrap();
    api::link(&mut a, &ea, &id, &other, Some("blocks"), true).unwrap();
    api::link(&mut b, &eb, &id, &other, None, true).unwrap();
    both(&mut a, &mut b);
    let d = model::node_detail(&a, &ea, id.parse().unwrap()).unwrap();
    assert_eq!(d.node.tags, vec!["x", "y"]);
    assert_eq!(d.links.len(), 2);
    // Concurrent add and remove of the same tag: the later one wins.
    ea.advance(5);
    eb.advance(9);
    api::tag(&mut a, &ea, &id, "x", true).unwrap();
    api::tag(&mut b, &eb, &id, "x", false).unwrap();
    both(&mut a, &mut b);
    let d = model::node_detail(&b, &eb, id.parse().unwrap()).unwrap();
    assert_eq!(d.node.tags, vec!["y"]);
}

#[test]
fn logs_are_append_only_and_all_kept() {
    let (mut a, ea, mut b, eb) = pair();
    let id = add(&mut a, &ea, "t");
    both(&mut a, &mut b);
    api::log(&mut a, &ea, &id, "from a").unwrap();
    api::log(&mut b, &eb, &id, "from b").unwrap();
    both(&mut a, &mut b);
    let d = model::node_detail(&a, &ea, id.parse().unwrap()).unwrap();
    let texts: Vec<&str> = d.log.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts.len(), 2);
    assert!(texts.contains(&"from a") && texts.contains(&"from b"));
}

#[test]
fn context_disjoint_edits_merge_and_overlaps_conflict_until_resolved() {
    let (mut a, ea, mut b, eb) = pair();
    let id = add(&mut a, &ea, "doc");
    api::context(
        &mut a,
        &ea,
        &ContextEdit {
            id: id.clone(),
            body: Some("one\ntwo\nthree\n".into()),
            ..Default::default()
        },
    )
    .unwrap();
    both(&mut a, &mut b);
    ea.advance(1);
    eb.advance(2);
    api::context(
        &mut a,
        &ea,
        &ContextEdit {
            id: id.clone(),
            body: Some("ONE\ntwo\nthree\n".into()),
            ..Default::default()
        },
    )
    .unwrap();
    api::context(
        &mut b,
        &eb,
        &ContextEdit {
            id: id.clone(),
            body: Some("one\ntwo\nTHREE\n".into()),
            ..Default::default()
        },
    )
    .unwrap();
    both(&mut a, &mut b);
    let d = model::node_detail(&a, &ea, id.parse().unwrap()).unwrap();
    assert_eq!(d.context, "ONE\ntwo\nTHREE\n");
    assert!(!d.node.conflicted);

    // Overlapping edits: both kept, flagged.
    ea.advance(10);
    eb.advance(10);
    api::context(
        &mut a,
        &ea,
        &ContextEdit {
            id: id.clone(),
            body: Some("ONE\nA\nTHREE\n".into()),
            ..Default::default()
        },
    )
    .unwrap();
    api::context(
        &mut b,
        &eb,
        &ContextEdit {
            id: id.clone(),
            body: Some("ONE\nB\nTHREE\n".into()),
            ..Default::default()
        },
    )
    .unwrap();
    both(&mut a, &mut b);
    let d = model::node_detail(&a, &ea, id.parse().unwrap()).unwrap();
    assert!(d.node.conflicted, "{}", d.context);
    assert!(d.context.contains("A\n") && d.context.contains("B\n"));
    assert_eq!(model::conflicts(&b, &eb).unwrap().len(), 1);

    // A later edit on top of the merged document resolves it, on every replica.
    ea.advance(10);
    api::context(
        &mut a,
        &ea,
        &ContextEdit {
            id: id.clone(),
            body: Some("ONE\nA and B\nTHREE\n".into()),
            ..Default::default()
        },
    )
    .unwrap();
    both(&mut a, &mut b);
    let d = model::node_detail(&b, &eb, id.parse().unwrap()).unwrap();
    assert_eq!(d.context, "ONE\nA and B\nTHREE\n");
    assert!(!d.node.conflicted);
    assert!(model::conflicts(&a, &ea).unwrap().is_empty());
}

#[test]
fn tombstone_delete_and_restore_are_lww() {
    let (mut a, ea, mut b, eb) = pair();
    let id = add(&mut a, &ea, "t");
    both(&mut a, &mut b);
    ea.advance(1);
    eb.advance(2);
    api::set_deleted(&mut a, &ea, &id, true).unwrap();
    api::set_deleted(&mut b, &eb, &id, false).unwrap();
    both(&mut a, &mut b);
    assert_eq!(
        model::list(&a, &ea, &ListFilter::default()).unwrap().len(),
        1
    );
    eb.advance(10);
    api::set_deleted(&mut b, &eb, &id, true).unwrap();
    both(&mut a, &mut b);
    assert!(
        model::list(&a, &ea, &ListFilter::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn undo_is_new_ops_and_works_after_sync() {
    let (mut a, ea, mut b, eb) = pair();
    let id = add(&mut a, &ea, "t");
    ea.advance(1);
    api::edit_task(
        &mut a,
        &ea,
        &EditTask {
            id: id.clone(),
            title: Some("renamed".into()),
            ..Default::default()
        },
    )
    .unwrap();
    both(&mut a, &mut b);
    let before = a.op_count().unwrap();
    let u = api::undo(&mut a, &ea).unwrap();
    assert_eq!(u.action, "edit");
    assert!(a.op_count().unwrap() > before, "undo writes new ops");
    both(&mut a, &mut b);
    let v = model::list(&b, &eb, &ListFilter::default()).unwrap();
    assert_eq!(v[0].title, "t");
    // Undo the add too: the task is gone everywhere.
    api::undo(&mut a, &ea).unwrap();
    both(&mut a, &mut b);
    assert!(
        model::list(&b, &eb, &ListFilter::default())
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        api::undo(&mut a, &ea),
        Err(heph_spoke::SpokeError::NothingToUndo)
    ));
}

#[test]
fn concurrent_completion_of_a_recurring_task_never_duplicates() {
    let (mut a, ea, mut b, eb) = pair();
    let id = api::add_task(
        &mut a,
        &ea,
        &AddTask {
            title: "water plants".into(),
            recur: Some("every 3 days".into()),
            do_date: Some("today".into()),
            ..Default::default()
        },
    )
    .unwrap()
    .id;
    both(&mut a, &mut b);
    ea.advance(1);
    eb.advance(2);
    let na = api::done(&mut a, &ea, &id).unwrap().next.unwrap();
    let nb = api::done(&mut b, &eb, &id).unwrap().next.unwrap();
    assert_eq!(na.id, nb.id, "occurrence ids are deterministic");
    both(&mut a, &mut b);
    let open = model::list(&a, &ea, &ListFilter::default()).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].recurrence.as_deref(), Some("FREQ=DAILY;INTERVAL=3"));
    let today = heph_spoke::dates::today(&ea);
    assert_eq!(
        open[0].do_date.as_deref(),
        Some(
            heph_spoke::dates::civil_from_days(today + 3)
                .to_string()
                .as_str()
        )
    );
}

#[test]
fn older_ops_arriving_late_rematerialise_only_that_node() {
    let (mut a, ea, mut b, eb) = pair();
    let id = add(&mut a, &ea, "t");
    ea.advance(1);
    api::edit_task(
        &mut a,
        &ea,
        &EditTask {
            id: id.clone(),
            title: Some("old edit".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let ops = all_ops(&a);
    // Deliver newest first, then the rest: the late older ops re-fold the node.
    let (last, rest) = ops.split_last().unwrap();
    eb.advance(1);
    b.apply_stored(std::slice::from_ref(last), None).unwrap();
    let r = b.apply_stored(rest, None).unwrap();
    assert_eq!(r.rematerialised, 1);
    // Duplicates are ignored.
    let r = b.apply_stored(&ops, None).unwrap();
    assert_eq!(r.inserted, 0);
    assert_eq!(r.duplicates, ops.len() as u64);
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());
    let _ = Origin::default();
}

#[test]
fn history_lists_every_op_of_a_node() {
    let (mut a, ea, _b, _eb) = pair();
    let id = add(&mut a, &ea, "t");
    api::tag(&mut a, &ea, &id, "x", true).unwrap();
    let h = model::history(&a, &ea, id.parse().unwrap()).unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(h[0].change, "created task");
    assert_eq!(h[2].change, "added tag x");
}

#[test]
fn rebuild_reproduces_digest() {
    let (mut a, ea, _b, _eb) = pair();
    let id = add(&mut a, &ea, "t");
    api::log(&mut a, &ea, &id, "note").unwrap();
    api::context(
        &mut a,
        &ea,
        &ContextEdit {
            id,
            body: Some("x\n".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let (before, after) = a.doctor().unwrap();
    assert_eq!(before, after);
    assert_eq!(model::search(&a, &ea, "note", 10).unwrap().len(), 1);
}
