//! `WAIT` on the replicas holds a reservation's answer until the replica has it.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn wait_replicas_holds_the_answer_until_the_replica_has_the_reservation() {
    let world = World::start_with(&OriginOptions {
        wait_replicas: 1,
        ..OriginOptions::default()
    })
    .await;
    let sale = world.create_sale(10).await;
    let shop = world.shop();
    let waits = |outcome: &'static str| {
        let world = &world;
        async move {
            world
                .metric_with("origin_replica_waits_total", &[("outcome", outcome)])
                .await
        }
    };
    assert_eq!(shop.reserve(sale, "first").await.0, 200);
    assert_eq!(waits("acked").await, 1.0, "the replica acknowledged");

    // The sale's replica frozen: the reservation is answered all the same, after the wait
    // timeout, counted as short.
    let primary = world.primary_of(sale).await;
    let mut replica = None;
    for port in world.cluster.ports() {
        if world.cluster.role(port).await.unwrap() == (Role::Replica { of: primary }) {
            replica = world.cluster.pid(port);
        }
    }
    let replica = nix::unistd::Pid::from_raw(
        i32::try_from(replica.expect("the sale's primary has a replica")).unwrap(),
    );
    nix::sys::signal::kill(replica, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let (status, body) = shop.reserve(sale, "second").await;
    nix::sys::signal::kill(replica, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (waits("acked").await, waits("short").await),
        (1.0, 1.0),
        "the frozen replica made the wait short"
    );
    assert_eq!(world.live_buyers(sale).await.len(), 2);
}
