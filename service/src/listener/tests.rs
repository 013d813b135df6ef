//! The connection's deadlines as its state changes (paused clock), and the config's checks.

use std::{sync::Arc, time::Duration};

use super::*;
use crate::config::Problems;

#[test]
fn every_bad_field_is_named_under_its_table() {
    let config = ConnectionConfig {
        header_timeout: Duration::ZERO,
        idle_timeout: Duration::ZERO,
        body_timeout: Duration::ZERO,
        header_buffer_bytes: 4096,
        max_connections: 0,
    };
    let mut problems = Problems::default();
    config.validate("http.connections", &mut problems);
    let problems = problems.into_vec();
    for field in [
        "header_timeout_ms",
        "idle_timeout_ms",
        "body_timeout_ms",
        "header_buffer_bytes",
        "max_connections",
    ] {
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with(&format!("http.connections.{field}: "))),
            "{field}: {problems:?}"
        );
    }
    let mut problems = Problems::default();
    ConnectionConfig::default().validate("t", &mut problems);
    assert!(problems.into_vec().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_head_is_due_within_the_header_timeout_and_an_idle_connection_within_the_idle_one() {
    let config = ConnectionConfig::default();
    let header = config.header_timeout;
    let idle = config.idle_timeout;
    let activity = Arc::new(Activity::new());
    let start = activity.accepted;
    // A new connection owes a head from its accept, bytes or not.
    assert_eq!(
        activity.deadline(&config),
        Some((start + header, "header_timeout"))
    );
    tokio::time::advance(Duration::from_millis(1000)).await;
    activity.moved(true);
    assert_eq!(
        activity.deadline(&config),
        Some((start + header, "header_timeout")),
        "bytes do not move the head's deadline"
    );
    // A request in flight: no deadline from the listener.
    let busy = Busy::begin(activity.clone());
    assert_eq!(activity.deadline(&config), None);
    tokio::time::advance(Duration::from_millis(2000)).await;
    drop(busy);
    // Answered: idle from now.
    assert_eq!(
        activity.deadline(&config),
        Some((start + Duration::from_millis(3000) + idle, "idle_timeout"))
    );
    // Writes keep an idle connection alive; a read begins the next head.
    tokio::time::advance(Duration::from_millis(500)).await;
    activity.moved(false);
    assert_eq!(
        activity.deadline(&config),
        Some((start + Duration::from_millis(3500) + idle, "idle_timeout"))
    );
    tokio::time::advance(Duration::from_millis(500)).await;
    activity.moved(true);
    assert_eq!(
        activity.deadline(&config),
        Some((
            start + Duration::from_millis(4000) + header,
            "header_timeout"
        ))
    );
}
