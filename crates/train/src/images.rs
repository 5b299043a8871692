//! PNG image grids: observations above their reconstructions.

use crate::{Error, Result};
use std::path::Path;

/// Writes a grid of `[H, W, 3]` frames, `rows` × `cols`, with a 2-pixel gap, as PNG
/// (atomically).
pub fn save_grid(path: &Path, frames: &[Vec<u8>], height: usize, width: usize, cols: usize) -> Result<()> {
    let rows = frames.len().div_ceil(cols.max(1));
    let gap = 2;
    let (gw, gh) = (cols * (width + gap) - gap, rows * (height + gap) - gap);
    let mut img = vec![255u8; gw * gh * 3];
    for (i, f) in frames.iter().enumerate() {
        let (r, c) = (i / cols, i % cols);
        for y in 0..height {
            let dst = ((r * (height + gap) + y) * gw + c * (width + gap)) * 3;
            img[dst..dst + width * 3].copy_from_slice(&f[y * width * 3..(y + 1) * width * 3]);
        }
    }
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, gw as u32, gh as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| Error::Image(e.to_string()))?;
        w.write_image_data(&img).map_err(|e| Error::Image(e.to_string()))?;
    }
    crate::checkpoint::write_atomic(path, &bytes)
}
