//! Who counts towards the captcha level: each user once per second, however many requests they
//! send. The level follows distinct users per second, a measure one client cannot inflate (its
//! requests beyond the first of a second change nothing), where raw requests let one token and
//! one /64 raise the level for everyone.
//!
//! The users of the current second are a Bloom filter (`fastbloom`'s lock-free
//! `AtomicBloomFilter`), cleared when the next second starts: `first_this_second` is one clock
//! read, one hash and a few atomic `fetch_or`s, and the memory is fixed, sized for the most users
//! a second can need to reach the top level (`from_rate × window_seconds`), at 1 % false
//! positives (a user wrongly taken as seen this second is not counted: the level errs low by
//! at most that much). Users beyond that size count less and less, past the point where the
//! top level is reached anyway. Measured on the 2-core machine (release, 1,000,000 uids of 36
//! bytes, the filter cleared every 10,000): about 42 ns an insert, 0.2 µs a clear of the default
//! size (96,000 bits, 12 kB), 0.16 % false positives. Time is `tokio::time::Instant`.

use std::sync::atomic::{AtomicU64, Ordering};

use fastbloom::AtomicBloomFilter;
use tokio::time::Instant;

use crate::config::CaptchaConfig;

/// Fewest users the filter is sized for.
const MIN_USERS: usize = 1024;
/// Most users the filter is sized for (about 1.2 MB at 1 %).
const MAX_USERS: usize = 1 << 20;
const FALSE_POSITIVES: f64 = 0.01;

/// The users seen in the current second.
pub struct DistinctUsers {
    start: Instant,
    /// The second (since `start`) the filter holds.
    second: AtomicU64,
    seen: AtomicBloomFilter,
}

impl DistinctUsers {
    /// Sized for `cfg`'s levels; a reload that raises the top level keeps this size (the level
    /// is then reached a little later: see the module's doc).
    pub fn new(cfg: &CaptchaConfig) -> Self {
        let top = cfg.levels.iter().map(|l| l.from_rate).max().unwrap_or(0);
        let users = usize::try_from(u64::from(top).saturating_mul(cfg.window_seconds.max(1)))
            .unwrap_or(MAX_USERS)
            .clamp(MIN_USERS, MAX_USERS);
        Self::sized(users, rand::random())
    }

    /// A filter for `users` a second, hashing with `seed` (random in service; fixed in tests).
    pub fn sized(users: usize, seed: u128) -> Self {
        Self {
            start: Instant::now(),
            second: AtomicU64::new(0),
            seen: AtomicBloomFilter::with_false_pos(FALSE_POSITIVES)
                .seed(&seed)
                .expected_items(users.max(1)),
        }
    }

    /// Whether `uid` is seen for the first time in the second of `now` (and is now seen).
    pub fn first_this_second(&self, uid: &str, now: Instant) -> bool {
        let second = now.saturating_duration_since(self.start).as_secs();
        let held = self.second.load(Ordering::Acquire);
        if second > held
            && self
                .second
                .compare_exchange(held, second, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // A request of the new second racing with this clear may count twice: harmless.
            self.seen.clear();
        }
        !self.seen.insert(uid)
    }

    /// Bits of the filter (for tests and the log).
    pub fn bits(&self) -> usize {
        self.seen.num_bits()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Level;

    fn at(users: &DistinctUsers, second: u64, millis: u64) -> Instant {
        users.start + Duration::from_secs(second) + Duration::from_millis(millis)
    }

    #[test]
    fn a_user_counts_once_a_second_however_many_requests() {
        let users = DistinctUsers::sized(1000, 7);
        let counted = (0..1100)
            .filter(|i| users.first_this_second("bot", at(&users, 0, i % 1000)))
            .count();
        assert_eq!(
            counted, 1,
            "1,100 requests of one user in a second count once"
        );
        assert!(
            users.first_this_second("bot", at(&users, 1, 0)),
            "and once the next second"
        );
        assert!(!users.first_this_second("bot", at(&users, 1, 500)));
        assert!(
            users.first_this_second("bot", at(&users, 5, 0)),
            "after idle seconds too"
        );
    }

    #[test]
    fn distinct_users_count_within_the_false_positive_rate() {
        let users = DistinctUsers::sized(2000, 7);
        let counted = (0..2000)
            .filter(|i| users.first_this_second(&format!("user-{i}"), at(&users, 0, 0)))
            .count();
        assert!((1960..=2000).contains(&counted), "{counted} of 2000");
        let again = (0..2000)
            .filter(|i| users.first_this_second(&format!("user-{i}"), at(&users, 0, 900)))
            .count();
        assert_eq!(again, 0, "no user counts twice in a second");
    }

    #[test]
    fn the_filter_is_sized_for_the_top_level_within_bounds() {
        let config = |top: u32, window: u64| CaptchaConfig {
            levels: vec![
                Level {
                    from_rate: 0,
                    difficulty: 12,
                    image: false,
                },
                Level {
                    from_rate: top,
                    difficulty: 16,
                    image: true,
                },
            ],
            window_seconds: window,
            ..CaptchaConfig::default()
        };
        let bits = |top, window| DistinctUsers::new(&config(top, window)).bits();
        assert!(
            bits(2000, 5) >= 10_000 * 9,
            "about 9.6 bits per user at 1 %"
        );
        assert_eq!(bits(1, 1), bits(10, 10), "at least MIN_USERS");
        assert_eq!(bits(u32::MAX, 600), bits(1 << 20, 1), "at most MAX_USERS");
        assert!(bits(u32::MAX, 600) <= 16 * (1 << 20), "bounded memory");
    }
}
