//! Unit tests of the image captcha: real PNG and WAV bytes, answers from the alphabet, and the
//! WAV joiner on hand-made input.

use super::*;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A 16-bit mono PCM WAV as the crate makes them (44-byte header).
fn wav16(rate: u32, samples: &[i16]) -> Vec<u8> {
    let len = (samples.len() * 2) as u32;
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&len.to_le_bytes());
    for s in samples {
        wav.extend_from_slice(&s.to_le_bytes());
    }
    wav
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// Checks a WAV made by `wav_u8_mono`: its header, and its samples.
fn check_wav(wav: &[u8], samples: &[u8]) {
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(&wav[8..16], b"WAVEfmt ");
    assert_eq!(u32_at(wav, 4) as usize, wav.len() - 8, "RIFF size");
    assert_eq!(u32_at(wav, 24), AUDIO_SAMPLE_RATE);
    assert_eq!(&wav[36..40], b"data");
    assert_eq!(u32_at(wav, 40) as usize, samples.len());
    assert_eq!(&wav[44..44 + samples.len()], samples);
}

#[test]
fn generate_draws_a_png_a_wav_and_an_answer_of_the_asked_length() {
    for chars in 1..=MAX_CHARS {
        let captcha = generate(chars).unwrap();
        assert_eq!(captcha.answer.chars().count(), chars);
        assert!(
            captcha.answer.chars().all(|c| ALPHABET.contains(&c)),
            "{}",
            captcha.answer
        );
        assert!(captcha.png.starts_with(PNG_SIGNATURE));
        let wav = captcha.wav.unwrap();
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(&wav[8..12], b"WAVE");
        // 36 000 samples per letter at 22 050 Hz become 18 000 at 11 025 Hz, 8-bit.
        assert_eq!(u32_at(&wav, 40) as usize, chars * 18_000);
        assert_eq!(u32_at(&wav, 4) as usize, wav.len() - 8);
    }
}

#[test]
fn the_widest_answers_fit_the_canvas() {
    // The crate panics when the text overflows its canvas; many draws cover the wide letters.
    for _ in 0..10 {
        assert_eq!(generate(MAX_CHARS).unwrap().answer.len(), MAX_CHARS);
    }
}

#[test]
fn bad_lengths_are_refused() {
    assert_eq!(generate(0).err(), Some(ImageError::Length(0)));
    assert_eq!(
        generate(MAX_CHARS + 1).err(),
        Some(ImageError::Length(MAX_CHARS + 1))
    );
}

#[test]
fn the_alphabet_has_no_look_alikes() {
    for c in "0OQD1IL2Z5S6GB8UVMW".chars() {
        assert!(!ALPHABET.contains(&c), "{c}");
    }
}

#[test]
fn every_character_is_spoken_and_answers_are_read_out_with_fresh_noise() {
    for c in ALPHABET {
        assert_eq!(spoken().get(c).map(Vec::len), Some(18_000), "{c}");
    }
    let once = speak("AC3").unwrap();
    let twice = speak("AC3").unwrap();
    assert_eq!(once.len(), twice.len());
    assert_ne!(once, twice);
    assert_eq!(u32_at(&once, 40), 3 * 18_000);
    assert_eq!(speak("A0"), None, "0 is not in the alphabet");
    assert_eq!(speak(""), None);
}

#[test]
fn letters_are_resampled_to_8_bit_at_half_rate() {
    let loud = wav16(
        22_050,
        &[32_767, 32_767, -32_768, -32_768, 0, 1, 256, 256, -256, -256],
    );
    let samples = resample(&loud).unwrap();
    assert_eq!(samples, [255, 0, 128, 129, 127]);
    let wav = wav_u8_mono(&samples, AUDIO_SAMPLE_RATE);
    check_wav(&wav, &samples);
    // An odd sample count gets a pad byte outside `data`.
    assert_eq!(wav.len(), 44 + 5 + 1);
    check_wav(&wav_u8_mono(&[1, 2], AUDIO_SAMPLE_RATE), &[1, 2]);
}

#[test]
fn unreadable_letters_give_no_audio() {
    let good = wav16(22_050, &[0, 0]);
    assert_eq!(resample(&good), Some(vec![128]));
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        b"not a wav".to_vec(),
        wav16(22_050, &[]),
        wav16(44_100, &[0, 0]),
        good[..40].to_vec(),
        {
            let mut stereo = good.clone();
            stereo[22] = 2;
            stereo
        },
        {
            let mut eight_bit = good.clone();
            eight_bit[34] = 8;
            eight_bit
        },
        {
            let mut long = good.clone();
            long[40] = 200; // data longer than the file
            long
        },
    ];
    for wav in &cases {
        assert_eq!(resample(wav), None, "{wav:?}");
    }
}
