//! Bilinear shrinking of RGB frames with the arithmetic of OpenCV 4.10's
//! `cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)` on uint8 images, which the
//! dm_control backend applies to its 240×320 renders (`env.pixel_mode = "resize"`), so the
//! native backend's resized frames are the same bytes.
//!
//! OpenCV's result is not the real-valued bilinear formula rounded once. Per axis, an output
//! index `d` samples source `s = floor(f)` and `s + 1` at `f = (d + 0.5) · src/dst − 0.5`,
//! computed in f32 and clamped to the edges, with weights `1 − frac` and `frac` rounded to
//! 11-bit fixed point (sum 2048). The horizontal pass is exact integer arithmetic; the
//! vertical pass, in OpenCV's vector kernel, drops 4 bits of each row sum, keeps the high 16
//! bits of each product, and rounds the sum by 2 bits. That last step is what a direct
//! formula misses (it puts about 6% of the bytes one off); `tests/resize_vs_cv2.rs` checks this
//! function against cv2 itself.

/// 11 fractional bits in OpenCV's linear-resize weights (`INTER_RESIZE_COEF_BITS`).
const WEIGHT_ONE: i32 = 1 << 11;

/// One output coordinate: the two source coordinates it blends and their weights.
#[derive(Debug, Clone, Copy)]
struct Tap {
    lo: usize,
    hi: usize,
    w_lo: i32,
    w_hi: i32,
}

/// The taps of every output coordinate along one axis of `src` → `dst` pixels.
fn taps(src: usize, dst: usize) -> Vec<Tap> {
    // OpenCV's scale is the reciprocal of dst/src, both in f64.
    let scale = 1.0 / (dst as f64 / src as f64);
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let floor = f.floor();
            let (lo, frac) = if floor < 0.0 {
                (0, 0.0f32)
            } else if floor as usize >= src - 1 {
                (src - 1, 0.0)
            } else {
                (floor as usize, f - floor)
            };
            // OpenCV's saturate_cast<short> rounds half to even.
            let w_lo = ((1.0f32 - frac) * WEIGHT_ONE as f32).round_ties_even() as i32;
            Tap { lo, hi: (lo + 1).min(src - 1), w_lo, w_hi: WEIGHT_ONE - w_lo }
        })
        .collect()
}

/// A `[height, width, 3]` u8 frame shrunk to `[out_height, out_width, 3]`.
///
/// Only shrinking is reproduced (checked against cv2 for 240×320 to every square size up to
/// 240); OpenCV enlarges with other rounding.
///
/// # Panics
/// If `rgb.len() != height * width * 3`, a size is 0, or an output side exceeds the input's.
pub fn resize_linear(
    rgb: &[u8],
    height: usize,
    width: usize,
    out_height: usize,
    out_width: usize,
) -> Vec<u8> {
    assert_eq!(rgb.len(), height * width * 3, "frame must be [H, W, 3]");
    assert!(out_height > 0 && out_width > 0, "empty frame");
    assert!(out_height <= height && out_width <= width, "resize_linear only shrinks");
    let xs = taps(width, out_width);
    let ys = taps(height, out_height);
    // Horizontal pass of one source row: row sums with weights scaled by 2048.
    let horizontal = |y: usize| -> Vec<i32> {
        let row = &rgb[y * width * 3..(y + 1) * width * 3];
        let mut out = Vec::with_capacity(out_width * 3);
        for t in &xs {
            for c in 0..3 {
                out.push(i32::from(row[t.lo * 3 + c]) * t.w_lo + i32::from(row[t.hi * 3 + c]) * t.w_hi);
            }
        }
        out
    };
    let mut out = Vec::with_capacity(out_height * out_width * 3);
    for t in &ys {
        let top = horizontal(t.lo);
        let bottom = horizontal(t.hi);
        for (a, b) in top.iter().zip(&bottom) {
            // [0, 32640] after the shift, an i16 as in OpenCV's kernel; products keep their
            // high 16 bits.
            let sum = (((a >> 4) * t.w_lo) >> 16) + (((b >> 4) * t.w_hi) >> 16);
            out.push(((sum + 2) >> 2).clamp(0, 255) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_frame_stays_constant_and_same_size_is_a_copy() {
        let frame = vec![200u8; 240 * 320 * 3];
        assert!(resize_linear(&frame, 240, 320, 64, 64).iter().all(|&v| v == 200));
        let ramp: Vec<u8> = (0..4 * 4 * 3).map(|i| (i * 5) as u8).collect();
        // Same size: every output pixel is its source pixel.
        assert_eq!(resize_linear(&ramp, 4, 4, 4, 4), ramp);
    }

    #[test]
    fn taps_blend_neighbours_with_weights_summing_to_one() {
        for t in taps(320, 64) {
            assert_eq!(t.w_lo + t.w_hi, WEIGHT_ONE);
            assert!(t.hi == t.lo + 1 || t.hi == t.lo);
        }
        // 320 → 64: output 0 samples f = 2.0, exactly source 2.
        let first = taps(320, 64)[0];
        assert_eq!((first.lo, first.w_lo), (2, WEIGHT_ONE));
    }
}
