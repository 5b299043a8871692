//! Report generation from a fixed `metrics.csv` (tests/fixtures: 30 episodes, a test every 5,
//! no losses before the first update, one missing planning time, no Dreamer columns).

use gradplan_report::{
    learning_curves, save_figure, save_panels, Error, Figure, LineStyle, Point, Series, Table, DEFAULT_SIZE,
    PANEL_SIZE,
};
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics.csv")
}

/// A run directory holding `metrics` as its metrics.csv.
fn run_dir(metrics: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("metrics.csv"), metrics).unwrap();
    dir
}

/// Width and height from the PNG header.
fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    (info.width, info.height)
}

fn svg_text(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.starts_with("<svg"), "{} is not an SVG", path.display());
    text
}

fn no_temporary_files(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp"), "temporary file {name} left behind");
    }
}

#[test]
fn the_fixture_gives_returns_losses_and_planning() {
    let table = Table::read(&fixture()).unwrap();
    assert_eq!(table.len(), 30);
    let tests = table.column("test_return_mean").unwrap();
    assert_eq!(tests.iter().filter(|v| v.is_some()).count(), 6);

    let run = run_dir(&std::fs::read_to_string(fixture()).unwrap());
    let out = run.path().join("report");
    let written = learning_curves(run.path(), &out).unwrap();
    let names: Vec<String> =
        written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        names,
        ["returns.png", "returns.svg", "losses.png", "losses.svg", "planning.png", "planning.svg"]
    );
    for path in &written {
        assert!(std::fs::metadata(path).unwrap().len() > 1000, "{} is (nearly) empty", path.display());
    }
    assert_eq!(png_size(&out.join("returns.png")), DEFAULT_SIZE);
    // Five loss-like columns have data (total, observation, reward, KL, grad norm): 3 + 2 panels.
    assert_eq!(png_size(&out.join("losses.png")), (3 * PANEL_SIZE.0, 2 * PANEL_SIZE.1));
    // Only plan_ms of the planning columns is present.
    assert_eq!(png_size(&out.join("planning.png")), PANEL_SIZE);
    assert!(svg_text(&out.join("returns.svg")).contains("Returns"));
    let losses = svg_text(&out.join("losses.svg"));
    assert!(losses.contains("KL loss") && losses.contains("reward loss"));
    assert!(!losses.contains("Dreamer"), "columns without data get no panel");
    assert!(svg_text(&out.join("planning.svg")).contains("planning time"));
    no_temporary_files(&out);
}

#[test]
fn missing_columns_are_tolerated() {
    let run = run_dir("episode,train_return,loss_kl\n1,3.5,\n2,4.0,1.5\n3,,1.2\n");
    let out = run.path().join("report");
    let written = learning_curves(run.path(), &out).unwrap();
    assert_eq!(written.len(), 6);
    assert!(svg_text(&out.join("returns.svg")).contains("episode"), "no env_steps: episodes on x");
    assert!(svg_text(&out.join("planning.svg")).contains("no data"));
    assert_eq!(png_size(&out.join("losses.png")), PANEL_SIZE);

    // A header only: every figure says "no data", and is still a valid image.
    let empty = run_dir("episode,env_steps\n");
    let written = learning_curves(empty.path(), empty.path()).unwrap();
    assert_eq!(png_size(&written[0]), DEFAULT_SIZE);
    assert!(svg_text(&written[1]).contains("no data"));
}

#[test]
fn a_corrupt_csv_is_a_clear_error() {
    let run = run_dir("episode,env_steps,train_return\n1,250,3.0\n2,500\n");
    let err = learning_curves(run.path(), &run.path().join("report")).unwrap_err();
    assert!(matches!(err, Error::Csv { line: 3, .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("metrics.csv:3") && message.contains("2 cells"), "{message}");

    let binary = tempfile::tempdir().unwrap();
    std::fs::write(binary.path().join("metrics.csv"), [0x89, b'P', b'N', b'G', 0xff, 0xfe]).unwrap();
    let err = learning_curves(binary.path(), binary.path()).unwrap_err();
    assert!(err.to_string().contains("not UTF-8"), "{err}");

    let no_metrics = tempfile::tempdir().unwrap();
    let err = learning_curves(no_metrics.path(), no_metrics.path()).unwrap_err();
    assert!(matches!(err, Error::NoMetrics(_)), "{err}");
    let err = learning_curves(&no_metrics.path().join("nope"), no_metrics.path()).unwrap_err();
    assert!(matches!(err, Error::NotARunDir(_)), "{err}");
}

#[test]
fn figures_drop_non_finite_values_and_skip_empty_series() {
    let dir = tempfile::tempdir().unwrap();
    let fig = Figure {
        title: "Pendulum <swing-up> & more".into(),
        x_label: "x".into(),
        y_label: "y".into(),
        series: vec![
            Series::new("line", LineStyle::Solid, [(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0)]),
            Series::new("paper", LineStyle::Dashed, [(0.0, 2.0), (2.0, 2.0)]),
            Series::new("dots", LineStyle::Markers, [(1.0, 1.5)]),
            Series::new("empty", LineStyle::Solid, []),
            Series {
                label: "nan only".into(),
                points: vec![Point { x: f64::INFINITY, y: 1.0 }],
                ..Series::default()
            },
        ],
    };
    let written = save_figure(&fig, &dir.path().join("sub/fig.v1")).unwrap();
    assert_eq!(written[0], dir.path().join("sub/fig.v1.png"));
    let svg = svg_text(&written[1]);
    assert!(svg.contains("paper") && svg.contains("dots"));
    assert!(
        !svg.contains("nan only") && !svg.contains(">empty<"),
        "series without finite points are skipped"
    );

    let empty = Figure { title: "nothing".into(), ..Figure::default() };
    let written = save_figure(&empty, &dir.path().join("empty")).unwrap();
    assert_eq!(png_size(&written[0]), DEFAULT_SIZE);
    assert!(svg_text(&written[1]).contains("no data"));

    let written = save_panels(&[fig.clone(), empty, fig], 2, &dir.path().join("grid")).unwrap();
    assert_eq!(png_size(&written[0]), (2 * PANEL_SIZE.0, 2 * PANEL_SIZE.1));
    assert!(save_panels(&[], 0, &dir.path().join("bad")).is_err());
    no_temporary_files(dir.path());
    no_temporary_files(&dir.path().join("sub"));
}
