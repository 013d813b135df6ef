//! Unit tests of noticing a lost sale and of the heal's pure parts.

use super::*;

#[test]
fn a_fence_handed_out_twice_is_a_loss_of_its_epoch() {
    let fences = Fences::default();
    for fence in [3, 1, 2, 5, 4] {
        assert_eq!(
            fences.observe(7, fence),
            None,
            "{fence}: replies handled out of order"
        );
    }
    assert_eq!(fences.observe(7, 4), Some(Loss::RepeatedFence { epoch: 0 }));
    assert_eq!(
        fences.observe(8, 4),
        None,
        "another sale's fences are its own"
    );
    let healed = FENCE_EPOCH + 1;
    assert_eq!(fences.observe(7, healed), None);
    assert_eq!(
        fences.observe(7, healed),
        Some(Loss::RepeatedFence { epoch: 1 })
    );
}

#[test]
fn a_fence_older_than_all_remembered_is_a_loss() {
    let fences = Fences::default();
    for fence in 1_000..1_000 + FENCES_KEPT as i64 {
        assert_eq!(fences.observe(1, fence), None);
    }
    assert_eq!(
        fences.observe(1, 10),
        Some(Loss::RepeatedFence { epoch: 0 })
    );
    assert_eq!(fences.observe(1, 1_000 + FENCES_KEPT as i64), None);
}

#[test]
fn keys_expire_a_retention_after_the_end() {
    let end = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    assert_eq!(
        keys_expire_at(Some(end), Duration::from_secs(86_400)),
        (1_700_000_000 + 86_400) * 1000
    );
    assert_eq!(keys_expire_at(None, Duration::from_secs(86_400)), 0);
}
