//! A pool of drawn image captchas, so that the image level costs a bounded amount of CPU whatever
//! the request rate: drawing one takes about 4 ms, and at the image level thousands of challenges
//! a second are asked for. A background task redraws one slot at a time, at most
//! `images_per_second`; a challenge takes a random filled slot. An image therefore serves several
//! challenges during its life (`slots / images_per_second` seconds): each challenge still binds
//! the answer to its own id and needs its own proof of work, so a bot that reads one image once
//! saves the reading, not the work. Browsers fetch the picture and its audio by slot and
//! generation; a redrawn slot answers 404 and the page asks for a new challenge.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
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
    generations: AtomicU64,
}

impl ImagePool {
    pub fn new(slots: usize) -> Self {
        Self {
            slots: (0..slots.max(1)).map(|_| RwLock::new(None)).collect(),
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
            Some(Picked { slot, drawn })
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

    /// Redraws the slots one after another, at most `per_second` a second, until `shutdown`.
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
            let pool = self.clone();
            let slot = next;
            next = (next + 1) % self.slots.len();
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
        assert_eq!(picked.drawn.answer.len(), IMAGE_CHARS);
        assert!(picked.drawn.png.starts_with(b"\x89PNG"));
    }
}
