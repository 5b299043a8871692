//! Drawing [`Figure`]s into PNG and SVG files.

use crate::{colour_index, create_parent, Error, Figure, LineStyle, Result, PALETTE};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ffi::OsString;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Width and height in pixels of an image written by [`save_figure`].
pub const DEFAULT_SIZE: (u32, u32) = (900, 560);

/// Width and height in pixels of one panel of [`save_panels`].
pub const PANEL_SIZE: (u32, u32) = (450, 320);

/// Writes `<stem>.png` (width×height px, default 900×560) and `<stem>.svg`, each atomically
/// (temp file + rename); returns their paths, PNG first. Creates `stem`'s directory when
/// missing.
pub fn save_figure(fig: &Figure, stem: &Path) -> Result<Vec<PathBuf>> {
    save_figure_sized(fig, stem, DEFAULT_SIZE)
}

/// [`save_figure`] with another size, `(width, height)` in pixels.
pub fn save_figure_sized(fig: &Figure, stem: &Path, size: (u32, u32)) -> Result<Vec<PathBuf>> {
    save(stem, size, &Content::One(fig))
}

/// Grid of figures (e.g. one panel per loss) into one image pair, `<stem>.png` and
/// `<stem>.svg`, filled row by row with `columns` panels per row, each
/// [`PANEL_SIZE`]. No figures at all gives one panel that says "no data".
pub fn save_panels(figs: &[Figure], columns: usize, stem: &Path) -> Result<Vec<PathBuf>> {
    if columns == 0 {
        return Err(Error::Invalid("a grid of panels needs at least one column".into()));
    }
    let empty = [Figure::default()];
    let figs = if figs.is_empty() { &empty[..] } else { figs };
    let columns = columns.min(figs.len());
    let rows = figs.len().div_ceil(columns);
    let size = (PANEL_SIZE.0 * columns as u32, PANEL_SIZE.1 * rows as u32);
    save(stem, size, &Content::Grid { figs, rows, columns })
}

/// What one image pair shows.
enum Content<'a> {
    One(&'a Figure),
    Grid { figs: &'a [Figure], rows: usize, columns: usize },
}

impl Content<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
        match *self {
            Content::One(fig) => draw_figure(area, fig, Fonts::FULL),
            Content::Grid { figs, rows, columns } => {
                area.fill(&WHITE).map_err(|e| e.to_string())?;
                let cells = area.split_evenly((rows, columns));
                for (fig, cell) in figs.iter().zip(&cells) {
                    draw_figure(cell, fig, Fonts::PANEL)?;
                }
                Ok(())
            }
        }
    }
}

/// `stem` with `.ext` appended (not replacing an extension: `runs/a.b` → `runs/a.b.png`).
fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut s: OsString = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Draws with `draw` into `<stem>.png` and `<stem>.svg`, each through a temporary file.
fn save(stem: &Path, size: (u32, u32), content: &Content) -> Result<Vec<PathBuf>> {
    register_font();
    let png = with_suffix(stem, "png");
    create_parent(&png)?;
    let mut draw_error = None;
    let written = gradplan_fsio::replace_with(&png, |tmp| {
        let root = BitMapBackend::new(tmp, size).into_drawing_area();
        content.draw(&root).and_then(|()| root.present().map_err(|e| e.to_string())).map_err(|message| {
            draw_error = Some(message.clone());
            std::io::Error::other(message)
        })
    });
    match (written, draw_error) {
        (Ok(()), _) => {}
        (Err(_), Some(message)) => return Err(Error::Draw { path: png, message }),
        (Err(source), None) => return Err(Error::Io { path: png, source }),
    }

    let svg = with_suffix(stem, "svg");
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        content
            .draw(&root)
            .and_then(|()| root.present().map_err(|e| e.to_string()))
            .map_err(|message| Error::Draw { path: svg.clone(), message })?;
    }
    crate::write_atomic(&svg, text.as_bytes())?;
    Ok(vec![png, svg])
}

/// Registers the embedded DejaVu Sans as plotters' "sans-serif" (once per process), so text
/// renders without system fonts. Every plot of the project calls it before drawing.
pub fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The embedded font is valid; if it were not, text would be missing, not the plot.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

/// Text sizes: a full-size figure or a panel of a grid.
#[derive(Clone, Copy)]
struct Fonts {
    title: u32,
    label: u32,
    tick: u32,
    legend: u32,
}

impl Fonts {
    const FULL: Fonts = Fonts { title: 22, label: 15, tick: 13, legend: 14 };
    const PANEL: Fonts = Fonts { title: 16, label: 12, tick: 11, legend: 11 };
}

/// A series reduced to what is drawn: finite points and bands, sorted by x, with its colour.
struct Drawn<'a> {
    label: &'a str,
    style: LineStyle,
    colour: RGBColor,
    points: Vec<(f64, f64)>,
    band: Vec<(f64, f64, f64)>,
}

/// Keeps the series with finite data and gives each its colour: the label's palette slot,
/// or the next free one when an earlier series of this figure holds it.
fn drawable(fig: &Figure) -> Vec<Drawn<'_>> {
    let mut taken = [false; PALETTE.len()];
    let mut out = Vec::new();
    for s in &fig.series {
        let mut points: Vec<(f64, f64)> =
            s.points.iter().filter(|p| p.x.is_finite() && p.y.is_finite()).map(|p| (p.x, p.y)).collect();
        let mut band: Vec<(f64, f64, f64)> = s
            .band
            .iter()
            .filter(|b| b.x.is_finite() && b.low.is_finite() && b.high.is_finite())
            .map(|b| (b.x, b.low, b.high))
            .collect();
        if points.is_empty() && band.is_empty() {
            continue;
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        band.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut slot = colour_index(&s.label);
        if taken.iter().all(|&t| t) {
            taken = [false; PALETTE.len()];
        }
        while taken[slot] {
            slot = (slot + 1) % PALETTE.len();
        }
        taken[slot] = true;
        let (r, g, b) = PALETTE[slot];
        out.push(Drawn { label: &s.label, style: s.style, colour: RGBColor(r, g, b), points, band });
    }
    out
}

/// The range spanned by `values`, widened by 5% on each side (and to ±1 around a single value).
fn span(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() || !hi.is_finite() {
        return 0.0..1.0;
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { lo.abs().max(1.0) * 0.5 };
    (lo - pad)..(hi + pad)
}

fn draw_figure<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    fig: &Figure,
    fonts: Fonts,
) -> std::result::Result<(), String> {
    let fail = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    area.fill(&WHITE).map_err(fail)?;
    let series = drawable(fig);
    if series.is_empty() {
        let (w, h) = area.dim_in_pixel();
        let title =
            if fig.title.is_empty() { "no data".to_owned() } else { format!("{}: no data", fig.title) };
        let style = TextStyle::from(("sans-serif", fonts.title).into_font())
            .pos(Pos::new(HPos::Center, VPos::Center));
        area.draw(&Text::new(title, (w as i32 / 2, h as i32 / 2), style)).map_err(fail)?;
        return Ok(());
    }
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0).chain(s.band.iter().map(|b| b.0)));
    let x_range = span(xs);
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1).chain(s.band.iter().flat_map(|b| [b.1, b.2])));
    let y_range = span(ys);
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .caption(&fig.title, ("sans-serif", fonts.title))
        .x_label_area_size(fonts.label * 3)
        .y_label_area_size(fonts.label * 4 + 10)
        .build_cartesian_2d(x_range, y_range)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc(fig.x_label.as_str())
        .y_desc(fig.y_label.as_str())
        .x_label_formatter(&|v: &f64| human(*v))
        .y_label_formatter(&|v: &f64| human(*v))
        .light_line_style(TRANSPARENT)
        .bold_line_style(BLACK.mix(0.1))
        .label_style(("sans-serif", fonts.tick))
        .axis_desc_style(("sans-serif", fonts.label))
        .x_labels(6)
        .y_labels(6)
        .draw()
        .map_err(fail)?;
    // Bands first, so every line is drawn over every band.
    for s in &series {
        if s.band.len() >= 2 {
            let mut outline: Vec<(f64, f64)> = s.band.iter().map(|b| (b.0, b.2)).collect();
            outline.extend(s.band.iter().rev().map(|b| (b.0, b.1)));
            chart
                .draw_series(std::iter::once(Polygon::new(outline, s.colour.mix(0.2).filled())))
                .map_err(fail)?;
        } else if let Some(&(x, lo, hi)) = s.band.first() {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, lo), (x, hi)],
                    s.colour.mix(0.4).stroke_width(3),
                )))
                .map_err(fail)?;
        }
    }
    for s in &series {
        let colour = s.colour;
        let legend_style = colour.stroke_width(2);
        // A lone point of a line would be invisible; a dot shows it.
        if s.points.len() == 1 && s.style != LineStyle::Markers {
            chart
                .draw_series(s.points.iter().map(|&xy| Circle::new(xy, 3, colour.filled())))
                .map_err(fail)?;
        }
        let anno = match s.style {
            LineStyle::Solid => {
                chart.draw_series(LineSeries::new(s.points.clone(), colour.stroke_width(2))).map_err(fail)?
            }
            LineStyle::Dashed => chart
                .draw_series(DashedLineSeries::new(s.points.clone(), 8, 5, colour.stroke_width(2)))
                .map_err(fail)?,
            LineStyle::Markers => chart
                .draw_series(s.points.iter().map(|&xy| Circle::new(xy, 3, colour.filled())))
                .map_err(fail)?,
        };
        if !s.label.is_empty() {
            match s.style {
                LineStyle::Markers => {
                    anno.label(s.label).legend(move |(x, y)| Circle::new((x + 10, y), 3, colour.filled()))
                }
                _ => anno
                    .label(s.label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], legend_style)),
            };
        }
    }
    // One plain line needs no legend (the title and the y label name it); a line with a band
    // does: its label says what the band is over (e.g. "CEM (3 seeds)").
    let labelled: Vec<_> = series.iter().filter(|s| !s.label.is_empty()).collect();
    if labelled.len() > 1 || labelled.iter().any(|s| !s.band.is_empty()) {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", fonts.legend))
            .draw()
            .map_err(fail)?;
    }
    Ok(())
}

/// Tick labels: 20000 → "20k" (thousands only from 10⁴), 2.5e6 → "2.5M", 0.25 → "0.25".
fn human(x: f64) -> String {
    let (value, unit) = match x.abs() {
        v if v >= 1e6 => (x / 1e6, "M"),
        v if v >= 1e4 => (x / 1e3, "k"),
        _ => (x, ""),
    };
    let digits = match value.abs() {
        v if v >= 100.0 || value.fract().abs() < 1e-9 => 0,
        v if v >= 1.0 => 1,
        v if v >= 0.01 => 2,
        _ => 3,
    };
    format!("{value:.digits$}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_ticks() {
        assert_eq!(human(20000.0), "20k");
        assert_eq!(human(2.5e6), "2.5M");
        assert_eq!(human(0.25), "0.25");
        assert_eq!(human(500.0), "500");
    }

    #[test]
    fn span_pads_and_handles_one_value() {
        let r = span([1.0, 3.0].into_iter());
        assert!(r.start < 1.0 && r.end > 3.0);
        let r = span([5.0].into_iter());
        assert!(r.start < 5.0 && r.end > 5.0);
        assert_eq!(span(std::iter::empty()), 0.0..1.0);
    }

    #[test]
    fn with_suffix_appends() {
        assert_eq!(with_suffix(Path::new("a/b.c"), "png"), PathBuf::from("a/b.c.png"));
    }
}
