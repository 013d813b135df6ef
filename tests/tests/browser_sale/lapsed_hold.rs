//! A hold's time left ticks; once it lapses the holder's page tells it and the other page offers
//! the unit again, both without a reload.

use super::*;

/// The hold of the sale whose hold lapses: the second page must show "Sold out" first (that
/// takes about 2 s after the buy, see "sold-out propagation"), and the test waits it out.
const SHORT_HOLD_SECONDS: i64 = 5;

/// One unit, held by `holder` with a short hold that is never paid. The hold's time left ticks;
/// once it lapses the holder's page tells it and offers the unit again, and `other`, which
/// showed "Sold out", enables its button, both without a reload. Prints the delay from the hold's
/// expiry to each.
pub(super) async fn a_lapsed_hold_comes_back_to_both_pages(
    world: &World,
    holder: &Browser,
    other: &Browser,
    shots: &Path,
) {
    let (sale, _) = world
        .create_sale_with(
            1,
            Duration::ZERO,
            json!({"hold_seconds": SHORT_HOLD_SECONDS}),
        )
        .await;
    let page = format!("{}/sale/{sale}", world.front.nginx.url());
    tokio::try_join!(holder.goto(&page), other.goto(&page)).unwrap();
    for browser in [holder, other] {
        browser.run(WATCH, vec![]).await.unwrap();
    }
    until_page(
        holder,
        "the short-hold sale's button",
        Duration::from_secs(10),
        |_, enabled, _| enabled,
    )
    .await;
    holder.click("#buy").await.unwrap();
    until_page(
        holder,
        "the short hold",
        Duration::from_secs(20),
        |_, enabled, result| {
            result.starts_with("You got it: order ") && result.contains("Pay before") && !enabled
        },
    )
    .await;
    let first = until_hold(holder, "the short hold's time left", |left| {
        left.starts_with("Pay within 0:0")
    })
    .await;
    let next = until_hold(holder, "the time left to tick", |left| left != first).await;
    println!("the hold's time left: {first:?}, then {next:?}");

    let db = world.front.stack.postgres.client().await.unwrap();
    let row = db
        .query_one(
            "SELECT id, expires_at FROM orders WHERE sale_id = $1",
            &[&sale],
        )
        .await
        .unwrap();
    let (order, expires_at): (i64, OffsetDateTime) = (row.get(0), row.get(1));
    // Recorded in the page: the hold may lapse before this wait looks.
    wait::until(
        "the second page to show sold out",
        Duration::from_secs(20),
        || async { Ok(seen(other, "soldOut").await > 0.0) },
    )
    .await
    .unwrap();

    until_page(
        holder,
        "the holder's page to tell the lapsed hold and offer the unit",
        Duration::from_secs(30),
        |_, enabled, result| {
            result.starts_with(&format!("Order {order} was cancelled: the hold ended")) && enabled
        },
    )
    .await;
    assert_eq!(holder.text("#buy").await.unwrap(), "Buy now");
    assert_eq!(hold_text(holder).await.unwrap(), None);
    let pay_hidden = holder
        .run("return document.getElementById('pay').hidden;", vec![])
        .await
        .unwrap();
    assert_eq!(pay_hidden, json!(true));
    shoot(holder, shots, "sale-hold-lapsed").await;
    until_page(
        other,
        "the second page to offer the unit again",
        Duration::from_secs(30),
        |countdown, enabled, _| countdown.starts_with("The sale is live") && enabled,
    )
    .await;

    let expiry = unix_ms(expires_at);
    let told = seen(holder, "cancelled").await;
    let holder_enabled = seen(holder, "reopened").await;
    let sold_out = seen(other, "soldOut").await;
    let other_enabled = seen(other, "reopened").await;
    assert!(
        told > 0.0 && holder_enabled > 0.0,
        "the holder's page was reloaded"
    );
    assert!(other_enabled > 0.0, "the second page was reloaded");
    assert!(
        told >= expiry,
        "the lapse was told {:.0} ms before the expiry",
        expiry - told
    );
    println!(
        "hold lapse ({SHORT_HOLD_SECONDS} s hold): the holder's page told it {:.0} ms and enabled \
         its button {:.0} ms after the expiry; the second page (\"Sold out\" from {:.0} ms before \
         the expiry) enabled its button {:.0} ms after the expiry",
        told - expiry,
        holder_enabled - expiry,
        expiry - sold_out,
        other_enabled - expiry
    );

    // The unit is back in Redis and the books balance.
    let books = world.quiet_books(sale).await;
    assert_eq!(
        (books.cancelled, books.redis_remaining),
        (1, 1),
        "{books:?}"
    );
}
