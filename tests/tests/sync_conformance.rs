//! The hub-client conformance suite (`heph_spoke::sync::conformance`) run by the HTTP client against a
//! real `hephd --mode server` process on loopback — the same suite the in-memory hub passes.

mod sync_support;

use std::rc::Rc;

use heph_format::OwnerId;
use heph_spoke::sync::{HttpHub, StaticToken, conformance};
use sync_support::Hub;

fn owner() -> OwnerId {
    OwnerId::from_parts(1_767_225_600_000, [0x42; 10])
}

fn run(hub: &Hub, salt: u64) {
    let client = HttpHub::new(&hub.url(), Rc::new(StaticToken(None))).expect("client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(conformance::run(&client, owner(), salt));
}

#[test]
fn http_client_against_a_real_hub_that_adopts_its_first_owner() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = Hub::start(&tmp.path().join("hub"), None);
    run(&hub, 1);
    // A second run on the same hub with fresh origins: the owner is now fixed.
    run(&hub, 2);
}

#[test]
fn http_client_against_a_real_hub_with_a_fixed_owner() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = Hub::start(&tmp.path().join("hub"), Some(&owner().to_string()));
    run(&hub, 3);
}
