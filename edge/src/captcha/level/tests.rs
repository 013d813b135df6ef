//! Unit tests of the adaptive difficulty, on a synthetic clock: each request is recorded at an
//! explicit `tokio::time::Instant`, so no test sleeps or depends on the machine's speed.

use std::time::Duration;

use super::*;

fn level(from_rate: u32, difficulty: u8, image: bool) -> Level {
    Level {
        from_rate,
        difficulty,
        image,
    }
}

/// Levels from 0, 200 and 2000 requests/s; window 5 s; cooldown 30 s (as deploy/edge.toml).
fn config() -> CaptchaConfig {
    CaptchaConfig {
        levels: vec![
            level(0, 12, false),
            level(200, 16, false),
            level(2000, 18, true),
        ],
        window_seconds: 5,
        cooldown_seconds: 30,
        ..CaptchaConfig::default()
    }
}

fn at(d: &Difficulty, second: u64, fraction: Duration) -> Instant {
    d.start + Duration::from_secs(second) + fraction
}

/// Plays `counts[s]` requests evenly spread over second `first + s`, and returns the level
/// index at the end of each second.
fn play(d: &Difficulty, first: u64, counts: &[u64]) -> Vec<usize> {
    let mut levels = Vec::with_capacity(counts.len());
    for (offset, &n) in counts.iter().enumerate() {
        let second = first + offset as u64;
        for i in 0..n {
            d.record_at(at(d, second, Duration::from_secs(1) * i as u32 / n as u32));
        }
        levels.push(d.level_index_at(at(d, second, Duration::from_millis(999))));
    }
    levels
}

/// (second, level) at every change, the first second included.
fn changes(levels: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (second, &index) in levels.iter().enumerate() {
        if out.last().is_none_or(|&(_, last)| last != index) {
            out.push((second, index));
        }
    }
    out
}

/// Plays `counts` from second 0 under `cfg` and compares the level changes.
fn check(cfg: &CaptchaConfig, counts: &[u64], expected: &[(usize, usize)]) {
    let d = Difficulty::new(cfg);
    assert_eq!(changes(&play(&d, 0, counts)), expected);
}

fn repeat(pattern: &[u64], times: usize) -> Vec<u64> {
    pattern
        .iter()
        .copied()
        .cycle()
        .take(pattern.len() * times)
        .collect()
}

#[test]
fn a_burst_raises_the_level_at_once() {
    let cfg = config();
    check(&cfg, &[10; 20], &[(0, 0)]);
    // 1000 requests in a second is 200/s over the 5 s window: level 1, in that second.
    check(&cfg, &[0, 0, 1000], &[(0, 0), (2, 1)]);
    check(&cfg, &[0, 0, 999], &[(0, 0)]);
    check(&cfg, &[0, 0, 12_000], &[(0, 0), (2, 2)]);
    check(&cfg, &[0, 0, 5_000, 5_000], &[(0, 0), (2, 1), (3, 2)]);
}

#[test]
fn the_rise_happens_at_the_request_that_reaches_the_threshold() {
    let d = Difficulty::new(&config());
    play(&d, 0, &[10, 10, 10, 10]);
    // Second 4: the 40 requests before it count, so the 960th request reaches 1000 per window.
    let second = 4;
    for n in 1..=10_000u32 {
        d.record_at(at(&d, second, Duration::from_micros(u64::from(n))));
        let expected = match n {
            ..960 => 0,
            960..9960 => 1,
            _ => 2,
        };
        assert_eq!(
            d.level_index_at(at(&d, second, Duration::from_micros(u64::from(n)))),
            expected,
            "after {n}"
        );
    }
}

#[test]
fn quiet_lowers_the_level_one_step_per_cooldown() {
    let mut counts = vec![12_000];
    counts.extend([0; 100]);
    // The burst stays in the window for seconds 0-4; seconds 5-34 are the 30 calm seconds of
    // level 2, seconds 35-64 those of level 1.
    check(&config(), &counts, &[(0, 2), (35, 1), (65, 0)]);

    let mut cfg = config();
    cfg.window_seconds = 1;
    cfg.cooldown_seconds = 0;
    check(&cfg, &[3_000, 0, 0, 0], &[(0, 2), (2, 1), (3, 0)]);
}

#[test]
fn a_rate_around_a_threshold_does_not_flap() {
    let cfg = config();
    // 194/s and 216/s over the window, alternately: rises once, never falls back.
    check(&cfg, &repeat(&[150, 260], 150), &[(0, 0), (5, 1)]);
    // Ten seconds at 210/s, ten at 190/s: the dips are shorter than the cooldown.
    check(
        &cfg,
        &repeat(
            &[210; 10]
                .iter()
                .chain(&[190; 10])
                .copied()
                .collect::<Vec<_>>(),
            15,
        ),
        &[(0, 0), (4, 1)],
    );
    // The same traffic, then quiet: one fall after the cooldown.
    let mut counts = repeat(&[150, 260], 50);
    counts.extend([0; 40]);
    check(&cfg, &counts, &[(0, 0), (5, 1), (130, 0)]);
}

#[test]
fn idle_seconds_are_caught_up_on_the_next_call() {
    let d = Difficulty::new(&config());
    play(&d, 0, &[12_000]);
    assert_eq!(d.level_index_at(at(&d, 34, Duration::ZERO)), 2);
    assert_eq!(d.level_index_at(at(&d, 40, Duration::ZERO)), 1);
    assert_eq!(d.level_index_at(at(&d, 1_000_000, Duration::ZERO)), 0);
    // And it still rises afterwards.
    assert_eq!(play(&d, 1_000_001, &[12_000]), [2]);
}

#[test]
fn current_carries_the_level_and_the_rate() {
    let cfg = config();
    let d = Difficulty::new(&cfg);
    let levels = play(&d, 0, &[1_000, 1_000, 12_000]);
    assert_eq!(levels, [1, 1, 2]);
    assert_eq!(
        d.current_at(at(&d, 2, Duration::from_millis(999))),
        cfg.levels[2]
    );
    // At second 3 the window holds seconds 0-2 (and two empty ones): 14 000 / 5 s.
    assert_eq!(d.current_at(at(&d, 3, Duration::ZERO)), cfg.levels[2]);
    assert_eq!(d.rate(), 2_800.0);
    for (index, l) in cfg.levels.iter().enumerate() {
        assert_eq!(unpack(pack(index, l)), (index, l.clone()));
    }
    let odd = level(u32::MAX, u8::MAX, true);
    assert_eq!(unpack(pack(7, &odd)), (7, odd));
}

#[test]
fn reconfigure_keeps_the_measured_rate() {
    let d = Difficulty::new(&config());
    assert_eq!(play(&d, 0, &[500; 10]), [0, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    let now = at(&d, 9, Duration::from_millis(999));

    // Lower thresholds: the kept rate (500/s) reaches the new top level at once.
    let mut lower = config();
    lower.levels = vec![
        level(0, 10, false),
        level(100, 14, false),
        level(400, 20, true),
    ];
    d.reconfigure(&lower);
    assert_eq!(d.current_at(now), lower.levels[2]);
    assert_eq!(d.level_index_at(now), 2);

    // Fewer levels: the index is clamped.
    let mut single = config();
    single.levels = vec![level(0, 9, false)];
    d.reconfigure(&single);
    assert_eq!(d.current_at(now), single.levels[0]);

    // A shorter window keeps the most recent seconds: 500/s still.
    let mut short = config();
    short.window_seconds = 2;
    d.reconfigure(&short);
    assert_eq!(play(&d, 10, &[500]), [1]);
    assert_eq!(d.rate(), 500.0);
}

/// The same story on tokio's paused clock, through the methods the service calls: a synthetic
/// burst raises the level, quiet lowers it one level per cooldown, with no sleeping.
#[tokio::test(start_paused = true)]
async fn paused_clock_burst_raises_and_quiet_lowers_the_level() {
    let cfg = config();
    let d = Difficulty::new(&cfg);
    assert_eq!(d.level_index(), 0);
    for _ in 0..12_000 {
        d.record();
    }
    assert_eq!(
        d.level_index(),
        2,
        "a burst of 12000 in a second is level 2"
    );
    tokio::time::advance(Duration::from_secs(
        cfg.cooldown_seconds + cfg.window_seconds + 1,
    ))
    .await;
    assert_eq!(d.level_index(), 1, "quiet for a cooldown drops one level");
    tokio::time::advance(Duration::from_secs(cfg.cooldown_seconds + 1)).await;
    assert_eq!(d.level_index(), 0, "and one more after another cooldown");
}
