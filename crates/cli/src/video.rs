//! Animated GIFs of what the agent saw, upscaled so a person can see them.

use anyhow::{Context, Result};
use gradplan_env::Frame;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

/// Collects frames and writes them as one looping GIF.
pub struct GifWriter {
    frames: Vec<Frame>,
    scale: usize,
    /// Delay between frames in hundredths of a second.
    delay_cs: u16,
}

impl GifWriter {
    /// `scale`: integer nearest-neighbour upscaling (64×64 × 4 = 256×256).
    pub fn new(scale: usize, delay_cs: u16) -> Self {
        GifWriter { frames: Vec::new(), scale: scale.max(1), delay_cs }
    }

    pub fn push(&mut self, frame: &Frame) {
        self.frames.push(frame.clone());
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Writes the GIF atomically: a temporary file next to `path`, then a rename.
    pub fn save(&self, path: &Path) -> Result<()> {
        let first = self.frames.first().context("no frames to write")?;
        let (w, h) = (first.width * self.scale, first.height * self.scale);
        let width = u16::try_from(w).context("frame too wide for a GIF")?;
        let height = u16::try_from(h).context("frame too tall for a GIF")?;
        let write = |tmp: &Path| -> Result<()> {
            let file = File::create(tmp).with_context(|| format!("creating {}", tmp.display()))?;
            let mut enc = gif::Encoder::new(BufWriter::new(file), width, height, &[])?;
            enc.set_repeat(gif::Repeat::Infinite)?;
            for frame in &self.frames {
                let big = upscale(frame, self.scale);
                let mut f = gif::Frame::from_rgb_speed(width, height, &big, 10);
                f.delay = self.delay_cs;
                enc.write_frame(&f)?;
            }
            // The encoder's buffer is flushed into the file when it is dropped, here.
            Ok(())
        };
        gradplan_report::replace_with(path, |tmp| {
            write(tmp).map_err(|e| std::io::Error::other(format!("{e:#}")))
        })
        .with_context(|| format!("writing {}", path.display()))
    }
}

/// Frames of one height side by side, left to right, in one frame as wide as all of them;
/// every panel after the first has its first column painted white, a thin separator that
/// keeps the width a multiple of the panels'.
pub fn side_by_side(panels: &[&Frame]) -> Result<Frame> {
    let first = panels.first().context("no frames to put side by side")?;
    let height = first.height;
    if let Some(f) = panels.iter().find(|f| f.height != height) {
        anyhow::bail!("frames of heights {height} and {} cannot sit side by side", f.height);
    }
    let width: usize = panels.iter().map(|f| f.width).sum();
    let mut data = Vec::with_capacity(height * width * 3);
    for y in 0..height {
        for (i, f) in panels.iter().enumerate() {
            let row = &f.data[y * f.width * 3..(y + 1) * f.width * 3];
            let start = data.len();
            data.extend_from_slice(row);
            if i > 0 && f.width > 0 {
                data[start..start + 3].copy_from_slice(&[255, 255, 255]);
            }
        }
    }
    Ok(Frame::new(height, width, data)?)
}

/// Nearest-neighbour upscaling of an `[H, W, 3]` frame.
fn upscale(frame: &Frame, scale: usize) -> Vec<u8> {
    let w = frame.width * scale;
    let mut out = vec![0u8; frame.height * scale * w * 3];
    for y in 0..frame.height * scale {
        for x in 0..w {
            let src = ((y / scale) * frame.width + x / scale) * 3;
            let dst = (y * w + x) * 3;
            out[dst..dst + 3].copy_from_slice(&frame.data[src..src + 3]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upscale_repeats_pixels() {
        let f = Frame::new(1, 2, vec![1, 2, 3, 4, 5, 6]).unwrap();
        let big = upscale(&f, 2);
        assert_eq!(big.len(), 2 * 4 * 3);
        assert_eq!(&big[0..6], &[1, 2, 3, 1, 2, 3]);
        assert_eq!(&big[6..12], &[4, 5, 6, 4, 5, 6]);
        assert_eq!(&big[12..18], &[1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn side_by_side_joins_rows_with_a_separator() {
        let a = Frame::new(1, 2, vec![1, 1, 1, 2, 2, 2]).unwrap();
        let b = Frame::new(1, 2, vec![3, 3, 3, 4, 4, 4]).unwrap();
        let joined = side_by_side(&[&a, &b]).unwrap();
        assert_eq!((joined.height, joined.width), (1, 4));
        assert_eq!(joined.data, vec![1, 1, 1, 2, 2, 2, 255, 255, 255, 4, 4, 4]);
        let tall = Frame::new(2, 1, vec![0; 6]).unwrap();
        assert!(side_by_side(&[&a, &tall]).is_err());
    }

    #[test]
    fn writes_a_decodable_gif() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.gif");
        let mut w = GifWriter::new(4, 4);
        for i in 0..3u8 {
            w.push(&Frame::new(8, 8, vec![i * 80; 8 * 8 * 3]).unwrap());
        }
        w.save(&path).unwrap();
        let mut dec = gif::DecodeOptions::new();
        dec.set_color_output(gif::ColorOutput::RGBA);
        let mut d = dec.read_info(File::open(&path).unwrap()).unwrap();
        assert_eq!((d.width(), d.height()), (32, 32));
        let mut n = 0;
        while d.read_next_frame().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "temporary file left behind");
    }
}
