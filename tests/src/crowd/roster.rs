//! Who is who in the crowd: position `i` is an honest user or a bot of some kind. The bots are
//! `round(users × bots)` positions, their kinds dealt in turn from the list (an even split), and
//! the whole line is shuffled by a seeded SplitMix64, so one seed gives one crowd, run after run.

use super::bots::BotKind;

/// The part a position of the crowd plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Human,
    Bot(BotKind),
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny seeded generator, plenty for shuffling a crowd.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (> 0); the modulo bias is far below what a crowd can show.
    pub fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        usize::try_from(self.next_u64() % n).unwrap_or(0)
    }
}

/// The crowd's roles, position by position.
pub fn roster(users: usize, bots: f64, kinds: &[BotKind], seed: u64) -> Vec<Role> {
    let wanted = (users as f64 * bots.clamp(0.0, 1.0)).round();
    let n_bots = if kinds.is_empty() {
        0
    } else {
        // `wanted` is in 0..=users, a whole number: the conversion is exact.
        (wanted as usize).min(users)
    };
    let mut roles: Vec<Role> = (0..users)
        .map(|i| {
            if i < n_bots {
                Role::Bot(kinds[i % kinds.len()])
            } else {
                Role::Human
            }
        })
        .collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..roles.len()).rev() {
        roles.swap(i, rng.below(i + 1));
    }
    roles
}

#[cfg(test)]
mod tests {
    use super::{roster, BotKind, Role};

    #[test]
    fn the_mix_is_even_and_the_same_for_one_seed() {
        let kinds = [BotKind::NoPass, BotKind::ForgedNone];
        let a = roster(100, 0.2, &kinds, 7);
        assert_eq!(a, roster(100, 0.2, &kinds, 7));
        assert_ne!(a, roster(100, 0.2, &kinds, 8));
        let count = |r: Role| a.iter().filter(|x| **x == r).count();
        assert_eq!(count(Role::Human), 80);
        assert_eq!(count(Role::Bot(BotKind::NoPass)), 10);
        assert_eq!(count(Role::Bot(BotKind::ForgedNone)), 10);
        assert!(roster(10, 0.5, &[], 1).iter().all(|r| *r == Role::Human));
    }
}
