//! PlaNet's image preprocessing: 5-bit quantisation, centring, dequantisation noise.
//!
//! Frames are stored as raw u8 (`[H, W, 3]`); these functions turn them into the f32
//! `[3, H, W]` model input. With bit depth b: `x = floor(u / 2^(8-b)) / 2^b - 0.5`, in
//! `[-0.5, 0.5)`, plus `U[0, 1) / 2^b` noise when training so the model sees a continuous
//! density instead of 2^b spikes (Kaixhin/PlaNet `preprocess_observation_`).

use rand::Rng;

/// Converts one `[H, W, 3]` u8 frame into `[3, H, W]` f32 in `out`.
///
/// `noise` adds uniform dequantisation noise of one quantisation bin (training only).
///
/// # Panics
/// If `out.len() != frame.len()` or `bit_depth` is not in `1..=8`.
pub fn frame_to_chw(
    frame: &[u8],
    height: usize,
    width: usize,
    bit_depth: u32,
    noise: Option<&mut dyn rand::RngCore>,
    out: &mut [f32],
) {
    assert!((1..=8).contains(&bit_depth), "bit depth must be in 1..=8, got {bit_depth}");
    assert_eq!(frame.len(), height * width * 3, "frame must be [H, W, 3]");
    assert_eq!(out.len(), frame.len(), "output must be [3, H, W]");
    let shift = 8 - bit_depth;
    let bins = (1u32 << bit_depth) as f32;
    let plane = height * width;
    let mut noise = noise;
    for (p, px) in frame.chunks_exact(3).enumerate() {
        for (c, &u) in px.iter().enumerate() {
            let mut x = (u >> shift) as f32 / bins - 0.5;
            if let Some(rng) = noise.as_deref_mut() {
                x += rng.random::<f32>() / bins;
            }
            out[c * plane + p] = x;
        }
    }
}

/// Quantises a u8 frame in place to `bit_depth` bits (low bits zeroed), which is what the
/// model can distinguish; used for displaying what the agent saw.
pub fn quantise_u8(frame: &mut [u8], bit_depth: u32) {
    let shift = 8 - bit_depth;
    for u in frame {
        *u = (*u >> shift) << shift;
    }
}

/// Inverse of [`frame_to_chw`] without noise, for showing reconstructions: `[3, H, W]` f32
/// in `[-0.5, 0.5]` back to `[H, W, 3]` u8.
pub fn chw_to_frame(x: &[f32], height: usize, width: usize) -> Vec<u8> {
    let plane = height * width;
    assert_eq!(x.len(), 3 * plane, "input must be [3, H, W]");
    let mut out = vec![0u8; 3 * plane];
    for p in 0..plane {
        for c in 0..3 {
            out[p * 3 + c] = ((x[c * plane + p] + 0.5) * 255.0).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn five_bit_quantisation_matches_planet() {
        // u = 255 → floor(255/8) = 31 → 31/32 - 0.5; u = 7 → 0 → -0.5; u = 8 → 1/32 - 0.5.
        let frame = [255u8, 7, 8];
        let mut out = [0f32; 3];
        frame_to_chw(&frame, 1, 1, 5, None, &mut out);
        assert_eq!(out, [31.0 / 32.0 - 0.5, -0.5, 1.0 / 32.0 - 0.5]);
    }

    #[test]
    fn layout_is_channel_first() {
        // 1×2 frame: pixel 0 = (0, 64, 128), pixel 1 = (255, 255, 255).
        let frame = [0u8, 64, 128, 255, 255, 255];
        let mut out = [0f32; 6];
        frame_to_chw(&frame, 1, 2, 8, None, &mut out);
        assert_eq!(out[0], -0.5); // R of pixel 0
        assert_eq!(out[1], 255.0 / 256.0 - 0.5); // R of pixel 1
        assert_eq!(out[2], 64.0 / 256.0 - 0.5); // G of pixel 0
    }

    #[test]
    fn noise_stays_within_one_bin() {
        let frame: Vec<u8> = (0..=255u8).flat_map(|u| [u, u, u]).collect();
        let mut clean = vec![0f32; frame.len()];
        let mut noisy = vec![0f32; frame.len()];
        frame_to_chw(&frame, 16, 16, 5, None, &mut clean);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        frame_to_chw(&frame, 16, 16, 5, Some(&mut rng), &mut noisy);
        let mut moved = 0;
        for (c, n) in clean.iter().zip(&noisy) {
            let d = n - c;
            assert!((0.0..1.0 / 32.0).contains(&d), "noise {d} outside one bin");
            moved += (d > 0.0) as usize;
        }
        assert!(moved > frame.len() / 2, "noise was not applied");
        assert!(noisy.iter().all(|x| (-0.5..0.5).contains(x)));
    }

    #[test]
    fn round_trip_and_quantise() {
        let frame: Vec<u8> = (0..48u8).map(|i| i * 5).collect();
        let mut x = vec![0f32; 48];
        frame_to_chw(&frame, 4, 4, 8, None, &mut x);
        let back = chw_to_frame(&x, 4, 4);
        for (a, b) in frame.iter().zip(&back) {
            assert!((*a as i32 - *b as i32).abs() <= 1);
        }
        let mut q = vec![255u8, 9, 16];
        quantise_u8(&mut q, 5);
        assert_eq!(q, vec![248, 8, 16]);
    }
}
