//! The sale page as the browser tests read it: its countdown, its Buy button and its result, waited
//! on together until they show what a test expects.

use std::time::Duration;

use crate::{browser::Browser, wait};

/// Waits until `check(countdown, buy enabled, result)` holds on `browser`'s sale page, naming
/// `what` on timeout; returns how long it took.
pub async fn until<F>(
    browser: &Browser,
    what: &str,
    deadline: Duration,
    check: F,
) -> anyhow::Result<Duration>
where
    F: Fn(&str, bool, &str) -> bool,
{
    wait::until(what, deadline, || async {
        let countdown = browser.text("#countdown").await?;
        let enabled = browser.enabled("#buy").await?;
        let result = browser.text("#result").await?;
        Ok(check(&countdown, enabled, &result))
    })
    .await
}
