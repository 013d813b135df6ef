//! The image captcha for humans, with an audio alternative, drawn by the `captcha` crate.
//!
//! The image is a 220×120 PNG of upper-case letters and digits chosen not to be mistaken for
//! one another (none of 0 O D Q, 1 I L, 2 Z, 5 S, 6 G B 8, U V) and narrow enough that five
//! fit. The crate speaks each letter as its own WAV (22 050 Hz, 16-bit mono, 36 000 samples
//! with noise); each is resampled once to 11 025 Hz 8-bit mono (18 kB per letter) and kept,
//! and an answer is read out as one WAV of its letters with fresh noise. Drawing takes a few
//! milliseconds of CPU: call `generate` from `spawn_blocking`.

use std::{collections::HashMap, sync::OnceLock};

use captcha::{
    filters::{Dots, Noise, Wave},
    Captcha,
};
use rand::RngCore;

#[cfg(test)]
mod tests;

/// The characters an answer is made of.
/// M and W are left out too: at 49 and 54 px wide, five would not fit the view.
pub const ALPHABET: &[char] = &[
    'A', 'C', 'E', 'F', 'H', 'J', 'K', 'N', 'P', 'R', 'T', 'X', 'Y', '3', '4', '7', '9',
];
/// Most characters an image holds: five of the widest (A, 41 px) fill the 220-px view.
pub const MAX_CHARS: usize = 5;
const WIDTH: u32 = 220;
const HEIGHT: u32 = 120;
/// Sample rate of the joined audio.
pub const AUDIO_SAMPLE_RATE: u32 = 11_025;
/// Largest noise added to each 8-bit sample, on top of the crate's own.
const NOISE: u8 = 6;

/// A drawn captcha: its answer, its PNG, and the answer spoken as one WAV (if the crate's
/// audio could be read).
#[derive(Debug, Clone)]
pub struct ImageCaptcha {
    pub answer: String,
    pub png: Vec<u8>,
    pub wav: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("an image captcha has 1 to {MAX_CHARS} characters, not {0}")]
    Length(usize),
    #[error("the captcha crate drew {drawn} characters instead of {wanted}")]
    Drawn { wanted: usize, drawn: usize },
    #[error("the captcha crate could not encode the PNG")]
    Png,
    #[error("the captcha crate failed {0} draws in a row")]
    Failed(usize),
}

/// Draws before giving up: the captcha crate's crop (`view`) underflows, and panics in a debug
/// build, when the random glyphs come out narrower than the view, about one draw in a few
/// hundred; a new draw picks new glyphs.
const DRAW_ATTEMPTS: usize = 4;

/// Draws a captcha of `chars` characters from `ALPHABET`, with its audio.
pub fn generate(chars: usize) -> Result<ImageCaptcha, ImageError> {
    let (answer, png) = draw(chars)?;
    let wav = speak(&answer);
    if wav.is_none() {
        tracing::warn!(%answer, "captcha audio unavailable; image only");
    }
    Ok(ImageCaptcha { answer, png, wav })
}

/// Draws the picture only: `(answer, png)` (about 4 ms of CPU).
pub fn draw(chars: usize) -> Result<(String, Vec<u8>), ImageError> {
    if !(1..=MAX_CHARS).contains(&chars) {
        return Err(ImageError::Length(chars));
    }
    for _ in 0..DRAW_ATTEMPTS {
        if let Ok(drawn) = std::panic::catch_unwind(|| draw_once(chars)) {
            return drawn;
        }
    }
    Err(ImageError::Failed(DRAW_ATTEMPTS))
}

fn draw_once(chars: usize) -> Result<(String, Vec<u8>), ImageError> {
    let mut captcha = Captcha::new();
    captcha
        .set_chars(ALPHABET)
        .add_chars(chars as u32)
        .apply_filter(Noise::new(0.2))
        .apply_filter(Wave::new(2.0, 8.0))
        .view(WIDTH, HEIGHT)
        .apply_filter(Dots::new(8).min_radius(3).max_radius(6));
    let answer = captcha.chars_as_string();
    if answer.chars().count() != chars {
        return Err(ImageError::Drawn {
            wanted: chars,
            drawn: answer.chars().count(),
        });
    }
    let png = captcha.as_png().ok_or(ImageError::Png)?;
    Ok((answer, png))
}

/// `answer` read out letter by letter as one WAV, with fresh noise on every call (about
/// 0.05 ms once the letters are loaded); `None` when a letter has no recording.
pub fn speak(answer: &str) -> Option<Vec<u8>> {
    let mut samples = Vec::with_capacity(answer.len() * 18_000);
    for c in answer.chars() {
        samples.extend_from_slice(spoken().get(&c)?);
    }
    let mut noise = vec![0u8; samples.len()];
    rand::rng().fill_bytes(&mut noise);
    for (sample, random) in samples.iter_mut().zip(noise) {
        // Uniform in -NOISE..=NOISE, but for a negligible modulo bias.
        let offset = (random % (2 * NOISE + 1)) as i8 - NOISE as i8;
        *sample = sample.saturating_add_signed(offset);
    }
    (!samples.is_empty()).then(|| wav_u8_mono(&samples, AUDIO_SAMPLE_RATE))
}

/// Each character of `ALPHABET` as spoken by the crate, resampled; made once, because the
/// crate parses its 4 MB of audio on every `as_wav` call (3.7 ms).
fn spoken() -> &'static HashMap<char, Vec<u8>> {
    static SPOKEN: OnceLock<HashMap<char, Vec<u8>>> = OnceLock::new();
    SPOKEN.get_or_init(|| {
        let mut all = Captcha::new();
        for c in ALPHABET {
            all.set_chars(&[*c]).add_char();
        }
        all.chars()
            .into_iter()
            .zip(all.as_wav())
            .filter_map(|(c, wav)| Some((c, resample(&wav?)?)))
            .collect()
    })
}

/// A crate WAV (16-bit PCM mono at twice `AUDIO_SAMPLE_RATE`) as unsigned 8-bit samples at
/// `AUDIO_SAMPLE_RATE`: sample pairs are averaged (a crude low-pass), then shifted.
fn resample(wav: &[u8]) -> Option<Vec<u8>> {
    let pcm = pcm16_mono(wav, AUDIO_SAMPLE_RATE * 2)?;
    let samples = pcm
        .chunks_exact(4)
        .map(|pair| {
            let a = i32::from(i16::from_le_bytes([pair[0], pair[1]]));
            let b = i32::from(i16::from_le_bytes([pair[2], pair[3]]));
            ((((a + b) / 2) >> 8) + 128) as u8
        })
        .collect::<Vec<_>>();
    (!samples.is_empty()).then_some(samples)
}

/// The `data` of a RIFF/WAVE file in 16-bit PCM mono at `rate`.
fn pcm16_mono(wav: &[u8], rate: u32) -> Option<&[u8]> {
    if wav.get(0..4)? != b"RIFF" || wav.get(8..12)? != b"WAVE" {
        return None;
    }
    let (mut format_ok, mut at) = (false, 12);
    while let Some(header) = wav.get(at..at + 8) {
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let body = wav.get(at + 8..at + 8 + size)?;
        match &header[..4] {
            b"fmt " => {
                let u16_at =
                    |i: usize| body.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
                let rate_at = body
                    .get(4..8)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                format_ok = matches!(u16_at(0), Some(1 | 0xFFFE))
                    && u16_at(2) == Some(1)
                    && rate_at == Some(rate)
                    && u16_at(14) == Some(16);
            }
            b"data" if format_ok => return Some(body),
            b"data" => return None,
            _ => {}
        }
        at += 8 + size + size % 2;
    }
    None
}

/// A canonical 44-byte-header WAV of unsigned 8-bit mono PCM.
fn wav_u8_mono(samples: &[u8], rate: u32) -> Vec<u8> {
    let len = samples.len() as u32;
    let pad = len % 2; // chunks are word-aligned; the pad byte is not part of `data`
    let mut wav = Vec::with_capacity(45 + samples.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + len + pad).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes()); // bytes per second
    wav.extend_from_slice(&1u16.to_le_bytes()); // block align
    wav.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&len.to_le_bytes());
    wav.extend_from_slice(samples);
    if pad == 1 {
        wav.push(0);
    }
    wav
}
