//! A pool of drawn image captchas, so that the image level costs a bounded amount of CPU whatever
//! the request rate: drawing one takes about 4 ms, and at the image level thousands of challenges
//! a second are asked for. A background task draws one slot at a time, at most
//! `images_per_second`: first every empty or worn slot, then the slots a challenge was given
//! since they were drawn (an image nobody was given needs no replacing, so a quiet pool costs no
//! CPU). An image is worn, handed to no more challenges and due for a redraw, once it has served
//! `image_serves` challenges or `image_max_age_seconds` have passed since its first one; a
//! challenge takes a random unworn image, and when every image is worn (a rate above
//! `images_per_second × image_serves`) the challenge is refused for a second rather than given a
//! worn image or a fresh draw (which would unbound the CPU).
//!
//! An image leaves the edge only through a signed handle handed out with a challenge (see
//! `handle`), so the pool cannot be read ahead: an image nobody was given was never seen. Each
//! image is known by a random 64-bit draw id, not a counter.

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, OnceLock, RwLock,
    },
    time::Duration,
};

use hyper::body::Bytes;
use rand::Rng;
use tokio::{sync::watch, time::Instant};

use super::{handle::ImageRef, image};

/// Characters of a pooled image.
pub const IMAGE_CHARS: usize = 5;

/// How long an image serves: `serves` challenges at most, and `max_age` after its first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wear {
    pub serves: u32,
    pub max_age: Duration,
}

/// One drawn image.
#[derive(Debug)]
pub struct Drawn {
    /// Random, so that a handle tells nothing of other images.
    pub draw: u64,
    pub answer: String,
    pub png: Bytes,
    /// Challenges it was handed to.
    served: AtomicU32,
    first_served: OnceLock<Instant>,
}

impl Drawn {
    fn worn(&self, wear: Wear, now: Instant) -> bool {
        self.served.load(Ordering::Relaxed) >= wear.serves
            || self
                .first_served
                .get()
                .is_some_and(|first| now.saturating_duration_since(*first) >= wear.max_age)
    }

    fn was_served(&self) -> bool {
        self.served.load(Ordering::Relaxed) > 0
    }
}

/// An image a challenge was given.
#[derive(Debug, Clone)]
pub struct Picked {
    pub at: ImageRef,
    pub drawn: Arc<Drawn>,
}

pub struct ImagePool {
    slots: Vec<RwLock<Option<Arc<Drawn>>>>,
}

impl ImagePool {
    pub fn new(slots: usize) -> Self {
        Self {
            slots: (0..slots.max(1)).map(|_| RwLock::new(None)).collect(),
        }
    }

    fn at(&self, slot: usize) -> Option<Arc<Drawn>> {
        self.slots.get(slot)?.read().ok()?.clone()
    }

    /// Draws into `slot` (blocking: call from a blocking thread).
    fn draw_into(&self, slot: usize) -> Result<(), image::ImageError> {
        let (answer, png) = image::draw(IMAGE_CHARS)?;
        let drawn = Arc::new(Drawn {
            draw: rand::random(),
            answer,
            png: Bytes::from(png),
            served: AtomicU32::new(0),
            first_served: OnceLock::new(),
        });
        if let Some(cell) = self.slots.get(slot) {
            if let Ok(mut cell) = cell.write() {
                *cell = Some(drawn);
            }
        }
        Ok(())
    }

    /// A random unworn image, now counted as serving one more challenge; `None` while every
    /// image is worn (or none is drawn yet).
    pub fn pick(&self, wear: Wear, now: Instant) -> Option<Picked> {
        let n = self.slots.len();
        let start = rand::rng().random_range(0..n);
        (0..n).find_map(|i| {
            let slot = (start + i) % n;
            let drawn = self.at(slot)?;
            if drawn.worn(wear, now) || drawn.served.fetch_add(1, Ordering::Relaxed) >= wear.serves
            {
                return None;
            }
            drawn.first_served.get_or_init(|| now);
            Some(Picked {
                at: ImageRef {
                    slot,
                    draw: drawn.draw,
                },
                drawn,
            })
        })
    }

    /// The next slot to draw, from `from` on (wrapping): an empty or worn one first, else one
    /// served since it was drawn; `None` when every image is fresh and unseen.
    fn due(&self, from: usize, wear: Wear, now: Instant) -> Option<usize> {
        let n = self.slots.len();
        let order = || (0..n).map(move |i| (from + i) % n);
        order()
            .find(|&slot| self.at(slot).is_none_or(|d| d.worn(wear, now)))
            .or_else(|| order().find(|&slot| self.at(slot).is_some_and(|d| d.was_served())))
    }

    /// The image a handle points at, while its slot still holds it.
    pub fn get(&self, at: ImageRef) -> Option<Arc<Drawn>> {
        self.at(at.slot).filter(|drawn| drawn.draw == at.draw)
    }

    /// Draws the due slots one after another, at most `per_second` a second, until `shutdown`;
    /// `wear` is read at each draw (it follows reloads).
    pub async fn refill(
        self: Arc<Self>,
        per_second: u32,
        wear: impl Fn() -> Wear + Send,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick =
            tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(per_second.max(1))));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next = 0usize;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let Some(slot) = self.due(next, wear(), Instant::now()) else {
                continue;
            };
            next = (slot + 1) % self.slots.len();
            let pool = self.clone();
            match tokio::task::spawn_blocking(move || pool.draw_into(slot)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, slot, "image captcha draw failed"),
                Err(error) => tracing::warn!(%error, slot, "image captcha task failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEAR: Wear = Wear {
        serves: 3,
        max_age: Duration::from_secs(60),
    };

    #[test]
    fn picks_drawn_images_and_forgets_redrawn_ones() {
        let pool = ImagePool::new(3);
        let now = Instant::now();
        assert!(
            pool.pick(WEAR, now).is_none(),
            "an empty pool has nothing to give"
        );
        pool.draw_into(1).unwrap();
        let picked = pool.pick(WEAR, now).unwrap();
        assert_eq!(picked.at.slot, 1);
        assert!(pool.get(picked.at).is_some());
        let guessed = ImageRef {
            draw: picked.at.draw.wrapping_add(1),
            ..picked.at
        };
        assert!(pool.get(guessed).is_none(), "the draw id must match");
        pool.draw_into(1).unwrap();
        assert!(
            pool.get(picked.at).is_none(),
            "a redrawn slot no longer serves the old image"
        );
        assert!(pool.get(ImageRef { slot: 7, draw: 1 }).is_none());
        assert_eq!(picked.drawn.answer.len(), IMAGE_CHARS);
        assert!(picked.drawn.png.starts_with(b"\x89PNG"));
    }

    #[test]
    fn an_image_serves_a_bounded_number_of_challenges() {
        let pool = ImagePool::new(1);
        let now = Instant::now();
        pool.draw_into(0).unwrap();
        for _ in 0..WEAR.serves {
            assert!(pool.pick(WEAR, now).is_some());
        }
        assert!(
            pool.pick(WEAR, now).is_none(),
            "worn after {} challenges",
            WEAR.serves
        );
        assert_eq!(pool.due(0, WEAR, now), Some(0), "and due for a redraw");
        pool.draw_into(0).unwrap();
        assert!(pool.pick(WEAR, now).is_some(), "redrawn, it serves again");
    }

    #[test]
    fn an_image_lives_a_bounded_time_after_its_first_challenge() {
        let pool = ImagePool::new(2);
        let now = Instant::now();
        pool.draw_into(0).unwrap();
        pool.draw_into(1).unwrap();
        assert_eq!(
            pool.due(0, WEAR, now),
            None,
            "a full, unseen pool needs nothing"
        );
        assert_eq!(
            pool.due(0, WEAR, now + Duration::from_secs(3600)),
            None,
            "an image nobody was given does not age"
        );
        let picked = pool.pick(WEAR, now).unwrap();
        let other = 1 - picked.at.slot;
        assert_eq!(
            pool.due(other, WEAR, now),
            Some(picked.at.slot),
            "a served image is due"
        );
        let later = now + WEAR.max_age;
        for _ in 0..WEAR.serves - 1 {
            let again = pool.pick(WEAR, later).unwrap();
            assert_eq!(
                again.at.slot, other,
                "past its age, only the other image is given"
            );
        }
        assert_eq!(
            pool.due(0, WEAR, later),
            Some(picked.at.slot),
            "the aged one is due first"
        );
    }
}
