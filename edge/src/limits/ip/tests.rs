//! Unit tests of the per-IP limiter on a fake clock: keys by address and /64, the user-keyed
//! captcha limits, housekeeping.

use governor::clock::FakeRelativeClock;

use super::*;

fn limiter(per_second: f64, burst: u32) -> (IpLimiter<FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    let config = RateConfig {
        per_second,
        burst,
        dry_run: false,
    };
    (
        IpLimiter::with_clock(&config, clock.clone()).unwrap(),
        clock,
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn allowed(remaining: u64, reset_ms: u64) -> Option<(u64, u64)> {
    Some((remaining, reset_ms))
}

/// Decisions as `Some((remaining, reset ms))` for allow, `None` for deny.
fn run(limiter: &IpLimiter<FakeRelativeClock>, from: &str, n: usize) -> Vec<Option<(u64, u64)>> {
    (0..n)
        .map(|_| match limiter.check(ip(from)) {
            Decision::Allow(q) => Some((q.remaining, q.reset.as_millis() as u64)),
            Decision::Deny { .. } => None,
        })
        .collect()
}

#[test]
fn burst_then_deny_and_another_ip_is_unaffected() {
    let (limiter, _) = limiter(2.0, 3);
    assert_eq!(
        run(&limiter, "10.0.0.1", 4),
        [allowed(2, 500), allowed(1, 1000), allowed(0, 1500), None]
    );
    assert_eq!(run(&limiter, "10.0.0.2", 1), [allowed(2, 500)]);
    assert_eq!(limiter.len(), 2);
}

#[test]
fn retry_after_is_the_time_to_the_next_slot() {
    let (limiter, clock) = limiter(0.5, 2);
    run(&limiter, "10.0.0.1", 2);
    clock.advance(Duration::from_millis(500));
    let Decision::Deny { retry_after, quota } = limiter.check(ip("10.0.0.1")) else {
        panic!("the third request within 2 s should be denied");
    };
    assert_eq!(retry_after, Duration::from_millis(1500));
    assert_eq!((quota.limit, quota.remaining), (2, 0));
    assert_eq!(quota.reset, Duration::from_millis(3500));
    clock.advance(retry_after);
    assert_eq!(run(&limiter, "10.0.0.1", 2), [allowed(0, 4000), None]);
}

#[test]
fn ipv6_is_keyed_by_its_64_and_mapped_ipv4_by_its_ipv4() {
    let check = |a: &str, b: &str, same: bool| {
        assert_eq!(key(ip(a)) == key(ip(b)), same, "{a} vs {b}");
    };
    check("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true);
    check("2001:db8:1:2::1", "2001:db8:1:3::1", false);
    check("::ffff:10.0.0.1", "10.0.0.1", true);
    check("10.0.0.1", "10.0.0.2", false);

    let (limiter, _) = limiter(1.0, 1);
    assert_eq!(run(&limiter, "2001:db8::1", 1), [allowed(0, 1000)]);
    assert_eq!(run(&limiter, "2001:db8::2", 1), [None]);
}

#[test]
fn housekeeping_drops_addresses_once_their_state_is_fresh_again() {
    let (limiter, clock) = limiter(10.0, 5);
    for n in 0..10_000u32 {
        limiter.check(IpAddr::from(n.to_be_bytes()));
    }
    limiter.check(ip("192.168.0.1"));
    limiter.check(ip("192.168.0.1"));
    assert_eq!(limiter.len(), 10_001);
    limiter.housekeeping();
    assert_eq!(limiter.len(), 10_001, "nothing has aged out yet");
    clock.advance(Duration::from_millis(250));
    limiter.housekeeping();
    assert_eq!(
        limiter.len(),
        1,
        "only the address used twice is still remembered"
    );
    clock.advance(Duration::from_millis(100));
    limiter.housekeeping();
    assert!(limiter.is_empty());
}

#[tokio::test]
async fn housekeeping_task_runs_and_ends_with_the_limiter() {
    let (limiter, clock) = limiter(10.0, 1);
    let limiter = Arc::new(limiter);
    limiter.check(ip("10.0.0.1"));
    clock.advance(Duration::from_secs(1));
    let task = limiter.spawn_housekeeping(Duration::from_millis(1));
    let emptied = async {
        while !limiter.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), emptied)
        .await
        .expect("housekeeping should drop the aged-out address");
    drop(limiter);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the task should end once the limiter is dropped")
        .unwrap();
}

#[test]
fn quotas_are_compared_without_dry_run_and_bad_ones_are_refused() {
    let (limiter, _) = limiter(2.0, 5);
    let check = |per_second, burst, dry_run, same| {
        let other = RateConfig {
            per_second,
            burst,
            dry_run,
        };
        assert_eq!(limiter.same_quota(&other), same, "{other:?}");
    };
    check(2.0, 5, true, true);
    check(2.5, 5, false, false);
    check(2.0, 6, false, false);
    let bad = [
        (0.0, 1),
        (-1.0, 1),
        (f64::NAN, 1),
        (1e-300, 1),
        (1e-11, 1),
        (1e-6, 1_000_000),
        (1.0, 0),
    ];
    for (per_second, burst) in bad {
        let config = RateConfig {
            per_second,
            burst,
            dry_run: false,
        };
        assert!(IpLimiter::new(&config).is_err(), "{config:?}");
    }
}
