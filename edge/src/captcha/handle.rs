//! Image handles: how the holder of an image challenge, and only they, fetch its picture and its
//! audio. A handle is ASCII, in exactly this form:
//!
//! ```text
//! <slot>.<draw>.<expires_at>.<mac>
//! ```
//!
//! `slot` is the pool's slot (decimal), `draw` the random 64-bit id of the image drawn there
//! (16 lower-case hex digits: no counter, so a handle tells nothing of any other image),
//! `expires_at` the challenge's expiry (Unix seconds), and `mac` the unpadded base64url of the
//! first 16 bytes of HMAC-SHA256(secret, `v1-image.<uid>.<slot>.<draw>.<expires_at>`), `uid` in
//! unpadded base64url: the handle is bound to the user, so it is opened only with that user's
//! token, and only until the challenge expires. It verifies under the current secret or a
//! previous one, like the challenge it came with.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

use super::pow::PowSigner;

/// Longest handle looked at, in bytes.
pub const MAX_HANDLE_BYTES: usize = 96;
const MAC_BYTES: usize = 16;
const MAC_CHARS: usize = 22;
const DRAW_CHARS: usize = 16;

/// What an open handle points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRef {
    pub slot: usize,
    pub draw: u64,
}

fn signed(uid: &str, slot: usize, draw: u64, expires_at: u64) -> String {
    format!(
        "v1-image.{}.{slot}.{draw:016x}.{expires_at}",
        URL_SAFE_NO_PAD.encode(uid)
    )
}

impl PowSigner {
    /// The handle of image `at` for `uid`, good until `expires_at`.
    pub fn image_handle(&self, uid: &str, at: ImageRef, expires_at: u64) -> String {
        let tag = self.sign(signed(uid, at.slot, at.draw, expires_at).as_bytes());
        format!(
            "{}.{:016x}.{expires_at}.{}",
            at.slot,
            at.draw,
            URL_SAFE_NO_PAD.encode(&tag[..MAC_BYTES])
        )
    }

    /// The image `handle` points at, if it is well formed, signed for `uid` and not expired at
    /// `now_unix`; `None` otherwise (the caller answers all of these the same way).
    pub fn open_image_handle(&self, handle: &str, uid: &str, now_unix: u64) -> Option<ImageRef> {
        if handle.len() > MAX_HANDLE_BYTES {
            return None;
        }
        let mut parts = handle.split('.');
        let (slot, draw, expires_at, mac) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        // Canonical decimals only (no leading zero): one image, one handle text.
        let decimal = |s: &str| {
            (1..=20).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_digit())
                && (s == "0" || !s.starts_with('0'))
        };
        let hex = draw.len() == DRAW_CHARS
            && draw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if parts.next().is_some()
            || !decimal(slot)
            || !decimal(expires_at)
            || !hex
            || mac.len() != MAC_CHARS
        {
            return None;
        }
        let at = ImageRef {
            slot: slot.parse().ok()?,
            draw: u64::from_str_radix(draw, 16).ok()?,
        };
        let expires_at: u64 = expires_at.parse().ok()?;
        let tag = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let text = signed(uid, at.slot, at.draw, expires_at);
        self.key_that_signed_truncated(text.as_bytes(), &tag)?;
        (now_unix < expires_at).then_some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;
    const SECRET: &[u8] = b"test-captcha-secret-0123456789abcdef";
    const OLD: &[u8] = b"the-old-captcha-secret-0123456789abcdef";
    const AT: ImageRef = ImageRef {
        slot: 17,
        draw: 0x0123_4567_89ab_cdef,
    };

    #[test]
    fn a_handle_opens_for_its_user_until_it_expires() {
        let signer = PowSigner::new(SECRET);
        let handle = signer.image_handle("alice", AT, NOW + 120);
        assert!(handle.starts_with("17.0123456789abcdef."), "{handle}");
        assert_eq!(signer.open_image_handle(&handle, "alice", NOW), Some(AT));
        assert_eq!(
            signer.open_image_handle(&handle, "alice", NOW + 119),
            Some(AT)
        );
        let check = |handle: &str, uid: &str, at: u64| {
            assert_eq!(
                signer.open_image_handle(handle, uid, at),
                None,
                "{handle} {uid} {at}"
            );
        };
        check(&handle, "alice", NOW + 120);
        check(&handle, "bob", NOW);
        check(&handle, "", NOW);
        // Walking slots and draws, or moving the expiry, breaks the MAC.
        let mac = handle.rsplit('.').next().unwrap();
        for forged in [
            format!("18.0123456789abcdef.{}.{mac}", NOW + 120),
            format!("17.0123456789abcdee.{}.{mac}", NOW + 120),
            format!("17.0123456789abcdef.{}.{mac}", NOW + 100_000),
            format!("17.0123456789ABCDEF.{}.{mac}", NOW + 120),
            format!("017.0123456789abcdef.{}.{mac}", NOW + 120),
        ] {
            check(&forged, "alice", NOW);
        }
        for malformed in [
            "",
            "17",
            "17.1",
            "17/1",
            "a.b.c.d",
            &format!("{handle}.x"),
            &"9".repeat(200),
        ] {
            check(malformed, "alice", NOW);
        }
        // Another secret's handle does not open.
        let other = PowSigner::new(OLD).image_handle("alice", AT, NOW + 120);
        check(&other, "alice", NOW);
    }

    #[test]
    fn a_previous_secret_opens_what_it_signed() {
        let before = PowSigner::new(OLD).image_handle("alice", AT, NOW + 120);
        let rotated = PowSigner::new(SECRET).accepting(&[OLD]);
        assert_eq!(rotated.open_image_handle(&before, "alice", NOW), Some(AT));
        let after = rotated.image_handle("alice", AT, NOW + 120);
        assert_eq!(
            PowSigner::new(OLD).open_image_handle(&after, "alice", NOW),
            None
        );
        assert_eq!(
            PowSigner::new(SECRET).open_image_handle(&after, "alice", NOW),
            Some(AT)
        );
    }
}
