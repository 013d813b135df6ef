//! Adaptive difficulty: the live rate of challenge requests picks a level from
//! `[captcha] levels`, as mCaptcha does, but with hysteresis so it does not flap.
//!
//! The rate is counted per second and averaged over the last `window_seconds` (the current,
//! partial second included). The level rises at once, within the second, to the highest level
//! whose `from_rate` the rate reaches. It falls one level at a time, and only after the rate has
//! stayed below the current level's `from_rate` for `cooldown_seconds` whole seconds in a row;
//! a rate wavering around a threshold therefore rises once and stays.
//!
//! `record` is on the hot path: one clock read, one atomic load and one atomic add; a mutex is
//! taken once per second (to close the second) and when the level rises. Seconds with no call
//! at all are caught up by the next call. Time is `tokio::time::Instant`.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, MutexGuard, PoisonError,
    },
};

use tokio::time::Instant;

use crate::config::{CaptchaConfig, Level};

#[cfg(test)]
mod tests;

/// The live difficulty level of this edge.
pub struct Difficulty {
    start: Instant,
    /// The second (since `start`) that `count` counts.
    second: AtomicU64,
    /// Requests recorded in `second` so far.
    count: AtomicU64,
    /// The `count` at which the level must rise (`u64::MAX` at the top level).
    raise_at: AtomicU64,
    /// The current level, packed by `pack`.
    current: AtomicU64,
    /// The rate over the last complete window, in thousandths of a request per second.
    rate_milli: AtomicU64,
    state: Mutex<State>,
}

struct State {
    levels: Vec<Level>,
    window: u64,
    cooldown: u64,
    /// Counts of the last `window - 1` complete seconds, oldest first.
    recent: VecDeque<u64>,
    recent_sum: u64,
    level: usize,
    /// Complete seconds in a row with the rate below the current level's `from_rate`.
    calm: u64,
    /// Requests in the last complete window.
    last_total: u64,
}

impl Difficulty {
    pub fn new(cfg: &CaptchaConfig) -> Self {
        let state = State {
            levels: levels_of(cfg),
            window: cfg.window_seconds.max(1),
            cooldown: cfg.cooldown_seconds,
            recent: VecDeque::new(),
            recent_sum: 0,
            level: 0,
            calm: 0,
            last_total: 0,
        };
        let this = Self {
            start: Instant::now(),
            second: AtomicU64::new(0),
            count: AtomicU64::new(0),
            raise_at: AtomicU64::new(u64::MAX),
            current: AtomicU64::new(0),
            rate_milli: AtomicU64::new(0),
            state: Mutex::new(state),
        };
        this.publish(&this.lock(), 0);
        this
    }

    /// Counts one challenge request, now.
    pub fn record(&self) {
        self.record_at(Instant::now());
    }

    /// Counts one challenge request at `now`.
    pub fn record_at(&self, now: Instant) {
        self.tick(now);
        let count = self.count.fetch_add(1, Ordering::AcqRel) + 1;
        if count >= self.raise_at.load(Ordering::Acquire) {
            self.raise();
        }
    }

    /// The level in force now.
    pub fn current(&self) -> Level {
        self.current_at(Instant::now())
    }

    pub fn current_at(&self, now: Instant) -> Level {
        self.tick(now);
        unpack(self.current.load(Ordering::Acquire)).1
    }

    /// The index of the level in force now, 0 being the lowest.
    pub fn level_index(&self) -> usize {
        self.level_index_at(Instant::now())
    }

    pub fn level_index_at(&self, now: Instant) -> usize {
        self.tick(now);
        unpack(self.current.load(Ordering::Acquire)).0
    }

    /// Requests per second over the last complete window (for metrics).
    pub fn rate(&self) -> f64 {
        self.rate_milli.load(Ordering::Acquire) as f64 / 1000.0
    }

    /// Takes new levels, window and cooldown (SIGHUP), keeping the counts measured so far.
    pub fn reconfigure(&self, cfg: &CaptchaConfig) {
        let mut state = self.lock();
        let before = state.level;
        state.levels = levels_of(cfg);
        state.window = cfg.window_seconds.max(1);
        state.cooldown = cfg.cooldown_seconds;
        state.level = state.level.min(state.levels.len() - 1);
        state.trim();
        let total = state.recent_sum + self.count.load(Ordering::Acquire);
        state.rise_to(total);
        self.publish(&state, before);
    }

    /// Closes the seconds that ended before `now`'s second, if any.
    fn tick(&self, now: Instant) {
        let second = now.saturating_duration_since(self.start).as_secs();
        if second <= self.second.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.lock();
        let open = self.second.load(Ordering::Acquire);
        if second <= open {
            return; // another caller closed it
        }
        let before = state.level;
        state.close(self.count.swap(0, Ordering::AcqRel));
        // Seconds without any call had no requests; past `settle` they change nothing.
        for _ in 0..(second - open - 1).min(state.settle_seconds()) {
            state.close(0);
        }
        self.second.store(second, Ordering::Release);
        self.publish(&state, before);
    }

    /// The count of the open second reached the next level's threshold.
    fn raise(&self) {
        let mut state = self.lock();
        let before = state.level;
        let total = state.recent_sum + self.count.load(Ordering::Acquire);
        state.rise_to(total);
        self.publish(&state, before);
    }

    fn publish(&self, state: &State, before: usize) {
        self.raise_at.store(state.raise_at(), Ordering::Release);
        let level = &state.levels[state.level];
        self.current
            .store(pack(state.level, level), Ordering::Release);
        self.rate_milli.store(
            state.last_total.saturating_mul(1000) / state.window,
            Ordering::Release,
        );
        if state.level != before {
            tracing::info!(
                from = before,
                to = state.level,
                difficulty = level.difficulty,
                image = level.image,
                window_requests = state.last_total,
                "captcha level changed"
            );
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Requests per window at which level `index` applies.
    fn threshold(&self, index: usize) -> u64 {
        u64::from(self.levels[index].from_rate) * self.window
    }

    /// The highest level whose threshold `total` reaches.
    fn reached(&self, total: u64) -> usize {
        (0..self.levels.len())
            .rev()
            .find(|&i| self.threshold(i) <= total)
            .unwrap_or(0)
    }

    /// Rises at once to the level `total` reaches, if higher.
    fn rise_to(&mut self, total: u64) {
        let reached = self.reached(total);
        if reached > self.level {
            self.level = reached;
            self.calm = 0;
        }
    }

    /// Closes a second that saw `count` requests: rises, or counts calm seconds and falls one
    /// level after `cooldown` of them.
    fn close(&mut self, count: u64) {
        let total = self.recent_sum + count;
        self.last_total = total;
        self.rise_to(total);
        if total >= self.threshold(self.level) {
            self.calm = 0;
        } else {
            self.calm += 1;
            if self.level > 0 && self.calm >= self.cooldown {
                self.level -= 1;
                self.calm = 0;
            }
        }
        self.recent.push_back(count);
        self.recent_sum += count;
        self.trim();
    }

    /// Keeps the last `window - 1` seconds.
    fn trim(&mut self) {
        while self.recent.len() as u64 >= self.window {
            if let Some(old) = self.recent.pop_front() {
                self.recent_sum -= old;
            }
        }
    }

    /// The count in the open second at which the next level applies.
    fn raise_at(&self) -> u64 {
        if self.level + 1 >= self.levels.len() {
            return u64::MAX;
        }
        self.threshold(self.level + 1)
            .saturating_sub(self.recent_sum)
            .max(1)
    }

    /// Idle seconds after which every level has fallen to the lowest.
    fn settle_seconds(&self) -> u64 {
        self.window + (self.cooldown + 1) * self.levels.len() as u64
    }
}

/// The configured levels, or one middling level if there are none (config validation refuses
/// that, so this only keeps the code total).
fn levels_of(cfg: &CaptchaConfig) -> Vec<Level> {
    if cfg.levels.is_empty() {
        tracing::warn!("captcha.levels is empty; using one level of difficulty 16");
        return vec![Level {
            from_rate: 0,
            difficulty: 16,
            image: false,
        }];
    }
    cfg.levels.clone()
}

/// index (16 bits) | image (1 bit) | difficulty (8 bits) | from_rate (32 bits).
fn pack(index: usize, level: &Level) -> u64 {
    (index.min(0xFFFF) as u64) << 48
        | u64::from(level.image) << 40
        | u64::from(level.difficulty) << 32
        | u64::from(level.from_rate)
}

fn unpack(packed: u64) -> (usize, Level) {
    let level = Level {
        from_rate: packed as u32,
        difficulty: (packed >> 32) as u8,
        image: (packed >> 40) & 1 == 1,
    };
    ((packed >> 48) as usize, level)
}
