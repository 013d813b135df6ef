//! An origin killed (SIGKILL) during a unit's return, between the database cancel and the Redis
//! return or after it: restarted, the return is finished exactly once.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_the_database_cancel_and_the_redis_return_loses_nothing() {
    // The unit is not in Redis yet when the origin dies: the restarted one puts it back.
    crash_during_a_return("after_cancel", 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_the_redis_return_before_its_record_is_closed_counts_the_unit_once() {
    // The unit is back in Redis when the origin dies, its return still open: the restarted one
    // runs the return again and the Redis barrier keeps the unit from counting twice.
    crash_during_a_return("after_restock", 2).await;
}

/// A hold cancelled by its user on an origin killed (SIGKILL) at `point` of the unit's return,
/// with `redis_at_crash` units in Redis then (of 3: one held by a keeper); restarted, the return
/// is finished exactly once.
async fn crash_during_a_return(point: &str, redis_at_crash: i64) {
    use std::os::unix::process::ExitStatusExt;

    let mut stack = stack().await;
    let sale = sale(&stack, 3, 600).await;
    let order = reserve(&stack, sale, "quitter").await;
    reserve(&stack, sale, "keeper").await;
    stack.origin.restart(Some(point)).await.unwrap();
    let url = format!("{}/v1/orders/{order}?uid=quitter", stack.origin.url());
    assert!(
        stack.http.delete(url).send().await.is_err(),
        "the crash cuts the answer off"
    );
    let exit = stack
        .origin
        .wait_exit(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(exit.signal(), Some(9), "{point}: killed by SIGKILL: {exit}");
    let books = stack.books(sale).await.unwrap();
    assert_eq!(
        (books.returning, books.redis_remaining),
        (1, redis_at_crash),
        "{point}: {books:?}"
    );

    stack.origin.restart(None).await.unwrap();
    let took = stack.wait_quiet(sale, DEADLINE).await.unwrap();
    println!(
        "{point}: open return finished {:.2} s after the restart",
        took.as_secs_f64()
    );
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!(
        (books.redis_remaining, books.live(), books.cancelled),
        (2, 1, 1),
        "{point}: {books:?}"
    );
    let mut conn = stack.redis.connection().await.unwrap();
    let barrier: Option<String> = conn.get(format!("{{s:{sale}}}:r:{order}")).await.unwrap();
    assert_eq!(barrier.as_deref(), Some("returned"));
    let (ok, report) = stack.reconcile(sale, false).await.unwrap();
    assert!(
        ok && report["drift"] == 0 && report["returning"] == 0,
        "{point}: {report}"
    );
}
