//! The global transaction id of a purchase: one user's purchase in one sale. `Gid { sale, uid }`
//! is built once from the request and travels as itself through phase 1, the branch, completion
//! and recovery; its text `<sale>/<uid>` (its `Display`) is what Redis keys, the Lua scripts, the
//! `orders.gid` and `barriers.gid` columns and the API's answers hold, and `FromStr` reads it back
//! (the recovery poller, from a due set). Where a gid is only carried and compared whole (the
//! heal's and reconcile's sets of gids in flight, read from Redis and PostgreSQL), it stays text.

use std::{fmt, num::ParseIntError, str::FromStr};

/// One user's purchase in one sale.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Gid {
    pub sale: i64,
    pub uid: String,
}

impl Gid {
    pub fn new(sale: i64, uid: impl Into<String>) -> Self {
        Self {
            sale,
            uid: uid.into(),
        }
    }
}

/// `<sale>/<uid>`: the uid may hold `/` itself, the sale never does.
impl fmt::Display for Gid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.sale, self.uid)
    }
}

/// Why a text is not a gid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseGidError {
    #[error("no '/' between sale and uid")]
    NoSeparator,
    #[error("the sale is not a number: {0}")]
    Sale(#[source] ParseIntError),
}

impl FromStr for Gid {
    type Err = ParseGidError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (sale, uid) = text.split_once('/').ok_or(ParseGidError::NoSeparator)?;
        Ok(Self::new(sale.parse().map_err(ParseGidError::Sale)?, uid))
    }
}

/// As its text, in the API's answers (`"gid": "<sale>/<uid>"`).
impl serde::Serialize for Gid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_round_trips_and_bad_texts_say_why() {
        let check = |text: &str, expected: Result<Gid, ParseGidError>| {
            let parsed = text.parse::<Gid>();
            assert_eq!(parsed, expected, "{text}");
            if let Ok(gid) = parsed {
                assert_eq!(gid.to_string(), text);
            }
        };
        check("7/u", Ok(Gid::new(7, "u")));
        check("7/a/b", Ok(Gid::new(7, "a/b")));
        check("-3/", Ok(Gid::new(-3, "")));
        check("7u", Err(ParseGidError::NoSeparator));
        assert!(matches!("x/y".parse::<Gid>(), Err(ParseGidError::Sale(_))));
        assert!(matches!("/y".parse::<Gid>(), Err(ParseGidError::Sale(_))));
        assert_eq!(
            serde_json::to_value(Gid::new(7, "a/b")).ok(),
            Some(serde_json::json!("7/a/b"))
        );
    }
}
