//! Figures and tables of a gradplan run, with no ML backend: line plots with shaded bands
//! written as PNG and SVG ([`save_figure`], [`save_panels`]), a small CSV reader that looks
//! columns up by name ([`Table`]), and the learning curves of a run directory
//! ([`learning_curves`]).
//!
//! Plots are drawn with plotters' pure-Rust bitmap and SVG backends, with text laid out by
//! ab_glyph from the DejaVu Sans font the `dejavu` crate embeds, so nothing depends on the
//! system's fonts or fontconfig.

mod curves;
mod figure;
mod table;

pub use curves::{final_test_return, learning_curves, markdown_table, FinalReturn, METRICS_FILE};
pub use figure::{register_font, save_figure, save_figure_sized, save_panels, DEFAULT_SIZE, PANEL_SIZE};
pub use table::Table;

use std::path::{Path, PathBuf};

/// Everything that can go wrong while reading tables or writing figures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A CSV file is not a table with a header (line 1 is the header).
    #[error("{}:{line}: {message}", path.display())]
    Csv { path: PathBuf, line: usize, message: String },
    /// plotters could not draw or encode an image.
    #[error("drawing {}: {message}", path.display())]
    Draw { path: PathBuf, message: String },
    /// A directory that does not exist was given as a run directory.
    #[error("{} is not a run directory (it does not exist or is not a directory)", .0.display())]
    NotARunDir(PathBuf),
    /// A run directory without `metrics.csv` (it has not finished an episode yet).
    #[error("{} has no metrics.csv: not a run directory, or the run has not finished an episode", .0.display())]
    NoMetrics(PathBuf),
    /// An argument that cannot be drawn (e.g. zero columns of panels).
    #[error("invalid figure: {0}")]
    Invalid(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// A line on a plot, with an optional shaded band around it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// Legend text; also picks the colour (see [`colour_index`]).
    pub label: String,
    /// The line's points; drawn in order of x. Points with a non-finite coordinate are dropped.
    pub points: Vec<Point>,
    /// A shaded area drawn under the line, e.g. mean ± std over seeds; may be empty.
    pub band: Vec<Band>,
    /// How the points are drawn.
    pub style: LineStyle,
}

/// One point of a [`Series`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

/// One vertical slice of a shaded area: from `low` to `high` at `x`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub x: f64,
    pub low: f64,
    pub high: f64,
}

/// How a [`Series`] is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineStyle {
    /// A solid line.
    #[default]
    Solid,
    /// A dashed line, for reference lines such as the paper's numbers.
    Dashed,
    /// Dots only, no line (sparse measurements).
    Markers,
}

/// One plot: a title, axis labels and its lines.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Figure {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Series without finite points are skipped; a figure with none says "no data". The
    /// legend is drawn when two or more series have a label, or one labelled series has a band.
    pub series: Vec<Series>,
}

impl Series {
    /// A series from `(x, y)` pairs, without a band.
    pub fn new(
        label: impl Into<String>,
        style: LineStyle,
        points: impl IntoIterator<Item = (f64, f64)>,
    ) -> Self {
        Series {
            label: label.into(),
            points: points.into_iter().map(|(x, y)| Point { x, y }).collect(),
            band: Vec::new(),
            style,
        }
    }
}

/// The palette: matplotlib's "tab10", so the plots read like the papers' figures.
pub const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// The palette slot of a label: the 64-bit FNV-1a hash of its UTF-8 bytes modulo the palette's
/// length. It depends on the label only, so the same label has the same colour in every figure
/// and every run. When two labels of one figure land on the same slot, the later one takes the
/// next free slot in that figure (so colours within a figure always differ, up to ten series).
pub fn colour_index(label: &str) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in label.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % PALETTE.len() as u64) as usize
}

/// Writes `bytes` to `path` atomically: a hidden temporary file beside it, then a rename.
/// Creates the parent directory when missing.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    create_parent(path)?;
    gradplan_fsio::write_atomic(path, bytes).map_err(|source| Error::Io { path: path.to_owned(), source })
}

/// Replaces `path` atomically with what `write` draws into the temporary path it is handed
/// (plotters' bitmap backend wants a path; the temporary one keeps `path`'s extension, from
/// which it picks the format). Creates the parent directory when missing.
pub fn replace_with(path: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<()> {
    create_parent(path)?;
    gradplan_fsio::replace_with(path, write).map_err(|source| Error::Io { path: path.to_owned(), source })
}

pub(crate) fn create_parent(path: &Path) -> Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_owned(), source })
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_index_depends_on_the_label_only() {
        assert_eq!(colour_index("test return"), colour_index("test return"));
        assert!(colour_index("anything") < PALETTE.len());
        let distinct: std::collections::HashSet<usize> =
            ["a", "b", "c", "d", "e", "f", "g", "h"].iter().map(|l| colour_index(l)).collect();
        assert!(distinct.len() > 2, "the hash spreads labels over the palette");
    }

    #[test]
    fn write_atomic_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.md");
        write_atomic(&path, b"hi").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hi");
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }
}
