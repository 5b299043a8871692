//! `model.safetensors` as PyTorch sees it, checked against `docs/checkpoint-format.md`:
//! the document's tensor tables list exactly the model's parameters, and its PyTorch snippet
//! (run as written, with the project's `.venv` Python) loads a saved model with
//! `load_state_dict(strict=True)` and computes what ours computes.
//!
//! Needs the project's `.venv/` (scripts/setup.sh) or `$GRADPLAN_VENV`; like the dm_control
//! tests, these fail rather than skip without it.

use gradplan_config::ModelConfig;
use gradplan_model::{ObsShape, RssmState, WorldModel};
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::{Device, Kind, Tensor};

const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/checkpoint-format.md");

fn doc() -> String {
    std::fs::read_to_string(DOC_PATH).expect("docs/checkpoint-format.md")
}

/// The text between `<!-- begin NAME -->` and `<!-- end NAME -->`.
fn section(doc: &str, name: &str) -> String {
    let (begin, end) = (format!("<!-- begin {name} -->"), format!("<!-- end {name} -->"));
    let start = doc.find(&begin).unwrap_or_else(|| panic!("{DOC_PATH} lacks `{begin}`")) + begin.len();
    let stop = doc[start..].find(&end).unwrap_or_else(|| panic!("{DOC_PATH} lacks `{end}`")) + start;
    doc[start..stop].to_owned()
}

/// One model per setting of the symbolic sizes (A: action size, O: state observation size),
/// default sizes otherwise; dimensions that move with a symbol are written `base + A`.
fn symbolic_shapes(pixels: bool) -> Vec<(String, String)> {
    let build = |a: i64, o: i64| {
        let obs = if pixels { ObsShape::Pixels { size: 64 } } else { ObsShape::State { dim: o } };
        let m = WorldModel::new(&ModelConfig::default(), obs, a, Device::Cpu).unwrap();
        m.named_parameters().into_iter().map(|(n, t)| (n, t.size())).collect::<Vec<_>>()
    };
    let (base, more_a, more_o) = (build(1, 1), build(2, 1), build(1, 2));
    base.iter()
        .zip(&more_a)
        .zip(&more_o)
        .map(|(((name, s), (_, sa)), (_, so))| {
            let dims: Vec<String> = (0..s.len())
                .map(|i| {
                    let (ca, co) = (sa[i] - s[i], so[i] - s[i]);
                    let constant = s[i] - ca - co;
                    let mut terms: Vec<String> = Vec::new();
                    if constant != 0 || (ca == 0 && co == 0) {
                        terms.push(constant.to_string());
                    }
                    for (c, sym) in [(ca, "A"), (co, "O")] {
                        match c {
                            0 => {}
                            1 => terms.push(sym.to_owned()),
                            c => terms.push(format!("{c}{sym}")),
                        }
                    }
                    terms.join(" + ")
                })
                .collect();
            (name.clone(), format!("[{}]", dims.join(", ")))
        })
        .collect()
}

/// `(name, shape, meaning)` of every `| \`name\` | \`shape\` | meaning |` row in a doc section.
fn doc_rows(section: &str) -> Vec<(String, String, String)> {
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            // `\|` is a literal bar inside a cell.
            let l = l.replace("\\|", "\u{0}");
            let cells: Vec<String> = l.split('|').map(|c| c.trim().replace('\u{0}', "\\|")).collect();
            let unquote = |c: &str| c.trim_matches('`').to_owned();
            (unquote(&cells[1]), unquote(&cells[2]), cells.get(3).cloned().unwrap_or_default())
        })
        .collect()
}

#[test]
fn the_documented_tensor_tables_are_the_models() {
    tch::set_num_threads(1);
    let doc = doc();
    for (variant, pixels) in [("pixel-tensors", true), ("state-tensors", false)] {
        let ours = symbolic_shapes(pixels);
        let documented = doc_rows(&section(&doc, variant));
        let listed: Vec<(String, String)> =
            documented.iter().map(|(n, s, _)| (n.clone(), s.clone())).collect();
        if listed != ours {
            // The table as it should read, keeping the meanings already written.
            let table: Vec<String> = ours
                .iter()
                .map(|(n, s)| {
                    let meaning = documented.iter().find(|d| &d.0 == n).map(|d| d.2.as_str()).unwrap_or("");
                    format!("| `{n}` | `{s}` | {meaning} |")
                })
                .collect();
            panic!(
                "the `{variant}` table in {DOC_PATH} is out of date; it should read:\n{}",
                table.join("\n")
            );
        }
    }
}

fn python() -> PathBuf {
    let venv = match std::env::var_os("GRADPLAN_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"),
    };
    let python = venv.join("bin/python");
    assert!(python.exists(), "{} is missing: run scripts/setup.sh or set GRADPLAN_VENV", python.display());
    python
}

/// Appended to the document's snippet: loads the checkpoint strictly, runs every module on
/// the inputs saved next to it and prints the largest deviation from our outputs.
const HARNESS: &str = r#"
import sys
torch.set_num_threads(1)
model = load_world_model(sys.argv[1])
io = load_file(sys.argv[2])
out = {}
with torch.no_grad():
    out["decoder"] = model.decoder(io["features"])
    out["reward"] = model.reward(io["features"]).squeeze(-1)
    out["encoder"] = model.encoder(io["obs"])
    h = model.transition.deterministic(io["belief"], io["stoch"], io["action"])
    out["belief"] = h
    out["prior_mean"], out["prior_std"] = model.transition.prior(h)
    out["posterior_mean"], out["posterior_std"] = model.transition.posterior(h, io["embed"])
for name, value in out.items():
    expected = io["expected." + name]
    assert value.shape == expected.shape, (name, value.shape, expected.shape)
    scale = max(1.0, expected.abs().max().item())
    print(name, (value - expected).abs().max().item() / scale)
"#;

/// Saves a model and its outputs on fixed inputs, runs the document's snippet plus
/// [`HARNESS`] on them, and checks every output agrees to 1e-5 (relative to max(1, |y|)).
fn check_against_pytorch(obs: ObsShape, action_dim: i64, tag: &str) {
    tch::set_num_threads(1);
    tch::manual_seed(11);
    let cfg = ModelConfig::default();
    let m = WorldModel::new(&cfg, obs, action_dim, Device::Cpu).unwrap();
    let dir = std::env::temp_dir().join(format!("gradplan-pytorch-compat-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (model_path, io_path) = (dir.join("model.safetensors"), dir.join("io.safetensors"));
    m.save(&model_path).unwrap();

    let n = 2;
    let opts = (Kind::Float, Device::Cpu);
    let observation = match obs {
        ObsShape::Pixels { size } => Tensor::rand([n, 3, size, size], opts) - 0.5,
        ObsShape::State { dim } => Tensor::randn([n, dim], opts),
    };
    let features = Tensor::randn([n, cfg.belief_size + cfg.state_size], opts);
    let prev = RssmState {
        belief: Tensor::randn([n, cfg.belief_size], opts),
        stoch: Tensor::randn([n, cfg.state_size], opts),
    };
    let action = Tensor::rand([n, action_dim], opts) * 2.0 - 1.0;
    let embed = Tensor::randn([n, cfg.embedding_size], opts);
    let mut io = vec![
        ("obs".to_owned(), observation.shallow_clone()),
        ("features".to_owned(), features.shallow_clone()),
        ("belief".to_owned(), prev.belief.shallow_clone()),
        ("stoch".to_owned(), prev.stoch.shallow_clone()),
        ("action".to_owned(), action.shallow_clone()),
        ("embed".to_owned(), embed.shallow_clone()),
    ];
    tch::no_grad(|| {
        let h = m.rssm.deterministic(&prev, &action);
        let prior = m.rssm.prior(&h);
        let posterior = m.rssm.posterior(&h, &embed);
        for (name, t) in [
            ("decoder", m.decode(&features)),
            ("reward", m.reward(&features)),
            ("encoder", m.encode(&observation)),
            ("belief", h.shallow_clone()),
            ("prior_mean", prior.mean),
            ("prior_std", prior.std),
            ("posterior_mean", posterior.mean),
            ("posterior_std", posterior.std),
        ] {
            io.push((format!("expected.{name}"), t));
        }
    });
    gradplan_backend::save_safetensors(&io_path, &io).unwrap();

    let script = section(&doc(), "pytorch-snippet");
    let code = script.trim().trim_start_matches("```python").trim_end_matches("```").to_owned() + HARNESS;
    let out = Command::new(python()).arg("-c").arg(&code).arg(&model_path).arg(&io_path).output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the snippet failed on the {tag} model:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{tag}:\n{stdout}");
    let mut seen = Vec::new();
    for line in stdout.lines() {
        let (name, err) = line.split_once(' ').unwrap();
        let err: f64 = err.parse().unwrap();
        assert!(err < 1e-5, "{tag} {name}: PyTorch and gradplan differ by {err:e}");
        seen.push(name.to_owned());
    }
    assert_eq!(seen.len(), 8, "{stdout}");
}

#[test]
fn pytorch_loads_a_pixel_model_strictly_and_agrees() {
    check_against_pytorch(ObsShape::Pixels { size: 64 }, 6, "pixels");
}

#[test]
fn pytorch_loads_a_state_model_strictly_and_agrees() {
    check_against_pytorch(ObsShape::State { dim: 5 }, 1, "state");
}
