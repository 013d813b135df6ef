//! The gid of one dtm message: one attempt at a purchase (`Gid`, a user in a sale) and a random
//! attempt number. A purchase's gid cannot serve: dtm keeps a failed message's gid for ever and
//! refuses to prepare it again, so a buyer whose message failed (the origin died between prepare
//! and reservation) could never try again. Its text, `<sale>.<uid in base64url>.<attempt in hex>`,
//! is what dtm stores and sends back in its calls: dtm drops `;`, `\r` and `\n` from a gid, so the
//! uid travels encoded (base64url has neither `.` nor `/`, so the text is never a purchase gid).

use std::{fmt, str::FromStr};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

use crate::gid::Gid;

/// One dtm message of a purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageGid {
    pub gid: Gid,
    pub attempt: u64,
}

impl MessageGid {
    /// A new message for `gid`, with a random attempt number.
    pub fn new(gid: Gid) -> Self {
        Self {
            gid,
            attempt: rand::random(),
        }
    }
}

impl fmt::Display for MessageGid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uid = URL_SAFE_NO_PAD.encode(self.gid.uid.as_bytes());
        write!(f, "{}.{uid}.{:016x}", self.gid.sale, self.attempt)
    }
}

/// Why a text is not a message gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a message gid (<sale>.<uid in base64url>.<attempt in hex>)")]
pub struct ParseMessageGidError;

impl FromStr for MessageGid {
    type Err = ParseMessageGidError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.split('.');
        let (Some(sale), Some(uid), Some(attempt), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseMessageGidError);
        };
        let sale = sale.parse().map_err(|_| ParseMessageGidError)?;
        let uid = URL_SAFE_NO_PAD
            .decode(uid)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(ParseMessageGidError)?;
        let attempt = u64::from_str_radix(attempt, 16).map_err(|_| ParseMessageGidError)?;
        Ok(Self {
            gid: Gid::new(sale, uid),
            attempt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_round_trips_without_what_dtm_drops_and_bad_texts_are_refused() {
        for uid in ["u", "a/b;c", "é.x", ""] {
            let message = MessageGid::new(Gid::new(7, uid));
            let text = message.to_string();
            assert!(!text.contains([';', '/', '\r', '\n']), "{text}");
            assert_eq!(text.parse(), Ok(message), "{text}");
        }
        assert_eq!(
            "7.dQ.00000000000000ff".parse(),
            Ok(MessageGid {
                gid: Gid::new(7, "u"),
                attempt: 255
            })
        );
        for bad in [
            "7/u",
            "7.dQ",
            "7.dQ.ff.1",
            "x.dQ.ff",
            "7.d!.ff",
            "7.dQ.zz",
            "7._w.1",
        ] {
            assert_eq!(
                bad.parse::<MessageGid>(),
                Err(ParseMessageGidError),
                "{bad}"
            );
        }
    }
}
