//! The bad fields of a config, each as `key.path: rule`, gathered so that one refusal names them
//! all. The range check writes its rule from the range itself, so a bound and its message never
//! disagree.

use std::{fmt::Display, ops::RangeInclusive};

/// Every bad field found so far.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    /// `field: rule` when `ok` does not hold.
    pub fn check(&mut self, ok: bool, field: &str, rule: &str) {
        if !ok {
            self.push(field, rule);
        }
    }

    /// `field: must be between A and B` when `value` is outside `range`.
    pub fn range<T: PartialOrd + Display>(
        &mut self,
        field: &str,
        value: T,
        range: RangeInclusive<T>,
    ) {
        if !range.contains(&value) {
            let (low, high) = range.into_inner();
            self.push(field, &format!("must be between {low} and {high}"));
        }
    }

    /// `field: must be at most MAX` when `value` is above `max`.
    pub fn at_most<T: PartialOrd + Display>(&mut self, field: &str, value: T, max: T) {
        if value > max {
            self.push(field, &format!("must be at most {max}"));
        }
    }

    /// `field: rule`.
    pub fn push(&mut self, field: &str, rule: &str) {
        self.0.push(format!("{field}: {rule}"));
    }

    /// Problems found elsewhere (a table checked by its own crate), already named.
    pub fn extend(&mut self, problems: impl IntoIterator<Item = String>) {
        self.0.extend(problems);
    }

    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_names_its_own_bounds_and_only_values_outside_it() {
        let mut problems = Problems::default();
        for value in [0, 1, 60_000, 60_001] {
            problems.range("origin.timeout_ms", value, 1..=60_000);
        }
        problems.at_most("captcha.cooldown_seconds", 3601, 3600);
        problems.at_most("captcha.cooldown_seconds", 3600, 3600);
        problems.range("redis.wait_replicas", 0, 0..=5);
        assert_eq!(
            problems.into_vec(),
            [
                "origin.timeout_ms: must be between 1 and 60000",
                "origin.timeout_ms: must be between 1 and 60000",
                "captcha.cooldown_seconds: must be at most 3600",
            ]
        );
    }
}
