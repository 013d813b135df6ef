//! A pool of drawn image captchas, so that the image level costs a bounded amount of CPU whatever
//! the request rate: drawing one takes about 4 ms, and at the image level thousands of challenges
//! a second are asked for. A background task draws one slot at a time, at most
//! `images_per_second`: first every empty slot, then only the slots a challenge was given since
//! they were drawn (an unused image needs no replacing, so a quiet pool costs no CPU); a
//! challenge takes a random filled slot. An image therefore serves several
//! challenges during its life (`slots / images_per_second` seconds): each challenge still binds
//! the answer to its own id and needs its own proof of work, so a bot that reads one image once
//! saves the reading, not the work. Browsers fetch the picture and its audio by slot and
//! generation; a redrawn slot answers 404 and the page asks for a new challenge.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, RwLock,
    },
    time::Duration,
};

use hyper::body::Bytes;
use rand::Rng;
use tokio::sync::watch;

use super::image;

/// Characters of a pooled image.
pub const IMAGE_CHARS: usize = 5;

/// One drawn image.
#[derive(Debug)]
pub struct Drawn {
    pub generation: u64,
    pub answer: String,
    pub png: Bytes,
}

/// A reference a challenge hands to the browser.
#[derive(Debug, Clone)]
pub struct Picked {
    pub slot: usize,
    pub drawn: Arc<Drawn>,
}

pub struct ImagePool {
    slots: Vec<RwLock<Option<Arc<Drawn>>>>,
    /// Per slot: given to a challenge since it was drawn (so it is due for a redraw).
    served: Vec<AtomicBool>,
    generations: AtomicU64,
}

impl ImagePool {
    pub fn new(slots: usize) -> Self {
        Self {
            slots: (0..slots.max(1)).map(|_| RwLock::new(None)).collect(),
            served: (0..slots.max(1)).map(|_| AtomicBool::new(false)).collect(),
            generations: AtomicU64::new(1),
        }
    }

    /// Draws into `slot` (blocking: call from a blocking thread).
    fn draw_into(&self, slot: usize) -> Result<(), image::ImageError> {
        let (answer, png) = image::draw(IMAGE_CHARS)?;
        let drawn = Arc::new(Drawn {
            generation: self.generations.fetch_add(1, Ordering::Relaxed),
            answer,
            png: Bytes::from(png),
        });
        if let Some(cell) = self.slots.get(slot) {
            if let Ok(mut cell) = cell.write() {
                *cell = Some(drawn);
                self.served[slot].store(false, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// A random filled slot; `None` while the pool is still empty.
    pub fn pick(&self) -> Option<Picked> {
        let n = self.slots.len();
        let start = rand::rng().random_range(0..n);
        (0..n).find_map(|i| {
            let slot = (start + i) % n;
            let drawn = self.slots[slot].read().ok()?.clone()?;
            self.served[slot].store(true, Ordering::Relaxed);
            Some(Picked { slot, drawn })
        })
    }

    /// The first slot from `from` on (wrapping) that is empty or was served since drawn.
    fn due(&self, from: usize) -> Option<usize> {
        let n = self.slots.len();
        (0..n).map(|i| (from + i) % n).find(|&slot| {
            self.served[slot].load(Ordering::Relaxed)
                || self.slots[slot].read().map_or(true, |cell| cell.is_none())
        })
    }

    /// The image in `slot` if it is still generation `generation`.
    pub fn get(&self, slot: usize, generation: u64) -> Option<Arc<Drawn>> {
        let drawn = self.slots.get(slot)?.read().ok()?.clone()?;
        (drawn.generation == generation).then_some(drawn)
    }

    /// Draws one image now into the next slot, for a challenge that finds the pool empty.
    pub async fn draw_now(self: &Arc<Self>) -> Option<Picked> {
        let pool = self.clone();
        let drawn = tokio::task::spawn_blocking(move || pool.draw_into(0)).await;
        if !matches!(drawn, Ok(Ok(()))) {
            tracing::error!("image captcha could not be drawn");
        }
        self.pick()
    }

    /// Draws the due slots (empty, or served since drawn) one after another, at most `per_second`
    /// a second, until `shutdown`.
    pub async fn refill(self: Arc<Self>, per_second: u32, mut shutdown: watch::Receiver<bool>) {
        let mut tick =
            tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(per_second.max(1))));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next = 0usize;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let Some(slot) = self.due(next) else { continue };
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

    #[test]
    fn picks_filled_slots_and_forgets_redrawn_ones() {
        let pool = ImagePool::new(3);
        assert!(pool.pick().is_none(), "an empty pool has nothing to give");
        pool.draw_into(1).unwrap();
        let picked = pool.pick().unwrap();
        assert_eq!(picked.slot, 1);
        assert!(pool.get(1, picked.drawn.generation).is_some());
        pool.draw_into(1).unwrap();
        assert!(
            pool.get(1, picked.drawn.generation).is_none(),
            "a redrawn slot no longer serves the old image"
        );
        assert!(pool.get(7, 1).is_none());
    }

    #[test]
    fn only_empty_or_served_slots_are_due() {
        let pool = ImagePool::new(3);
        assert_eq!(pool.due(1), Some(1), "an empty slot is due");
        for slot in 0..3 {
            pool.draw_into(slot).unwrap();
        }
        assert_eq!(pool.due(0), None, "a full, unused pool needs nothing");
        let picked = pool.pick().unwrap();
        assert_eq!(pool.due(0), Some(picked.slot), "a served slot is due");
        pool.draw_into(picked.slot).unwrap();
        assert_eq!(pool.due(0), None, "redrawn, it is fresh again");
        assert_eq!(picked.drawn.answer.len(), IMAGE_CHARS);
        assert!(picked.drawn.png.starts_with(b"\x89PNG"));
    }
}
