//! An open page of a sale that ends turns "Sale ended" without a reload, never before its end.

use super::*;

/// How long after its creation the sale that ends ends: time for its page to load and show it
/// live first.
const ENDS_AFTER: Duration = Duration::from_secs(5);

/// A sale that ends while its page is open: the page showed it live, then, without a reload,
/// shows "Sale ended" on a disabled button and the ended message; never before `ends_at`.
pub(super) async fn an_open_page_turns_sale_ended(world: &World, browser: &Browser, shots: &Path) {
    let ends = OffsetDateTime::now_utc() + ENDS_AFTER;
    let (sale, _) = world
        .create_sale_with(
            5,
            Duration::ZERO,
            json!({"ends_at": ends.format(&Rfc3339).unwrap()}),
        )
        .await;
    browser
        .goto(&format!("{}/sale/{sale}", world.front.nginx.url()))
        .await
        .unwrap();
    browser.run(WATCH, vec![]).await.unwrap();
    until_page(
        browser,
        "the open page to show the sale ended",
        Duration::from_secs(20),
        |countdown, enabled, result| {
            countdown == "This sale has ended." && !enabled && result == "This sale has ended."
        },
    )
    .await;
    assert_eq!(browser.text("#buy").await.unwrap(), "Sale ended");
    // The record of the page's states is in its window: a reload would have lost it.
    let (live_at, ended_at) = (seen(browser, "enabled").await, seen(browser, "ended").await);
    assert!(live_at > 0.0, "the page never showed the sale live");
    assert!(ended_at > 0.0, "the page was reloaded");
    not_before(
        "sale ended: the open page showed \"Sale ended\"",
        ended_at,
        (unix_ms(ends), "its ends_at"),
    );
    shoot(browser, shots, "sale-ended").await;
}
