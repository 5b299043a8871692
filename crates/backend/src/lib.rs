//! The numeric backend: tch 0.24 over libtorch 2.11.0 (the `torch==2.11.0` wheel from PyPI,
//! the same version the H100/H200 machines run, so a binary built here runs there on their
//! libtorch). See `docs/decisions.md` for the measurements behind the choice.
//!
//! This crate holds what every model-side crate shares: device selection, thread setup,
//! atomic safetensors I/O with PyTorch-style names, and the backend micro-benchmark.

pub mod bench;
pub mod optim;
pub mod rng;

use std::path::{Path, PathBuf};
use std::str::FromStr;
pub use tch;
use tch::{Device, Tensor};

/// Everything that can go wrong in the backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{0}` is not a device; use `cpu`, `cuda` or `cuda:N`")]
    BadDevice(String),
    #[error(
        "CUDA was requested but libtorch sees no CUDA device{detail}. Use `--device cpu`, or run on \
         a machine with an NVIDIA GPU and point LD_LIBRARY_PATH at its libtorch 2.11 (torch/lib)"
    )]
    CudaUnavailable { detail: String },
    #[error("could not write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} does not fit the network: {detail}; was it saved with another configuration?")]
    Mismatch { path: PathBuf, detail: String },
    #[error("{path} is not a readable safetensors file ({detail}); it may be truncated or corrupt")]
    CorruptWeights { path: PathBuf, detail: String },
    #[error("random generator state: {0}")]
    Rng(String),
    #[error("optimiser state: {0}")]
    OptimizerState(String),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A device as the user names it: `cpu`, `cuda` (device 0) or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| Error::BadDevice(s.to_owned())),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl DeviceSpec {
    /// The libtorch device, checking that it exists.
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(i) => {
                let loaded = load_cuda_backend();
                let count = tch::Cuda::device_count() as usize;
                if count == 0 {
                    let detail = match loaded {
                        Ok(()) => String::new(),
                        Err(why) => format!(" (libtorch_cuda.so could not be loaded: {why})"),
                    };
                    Err(Error::CudaUnavailable { detail })
                } else if i >= count {
                    Err(Error::CudaUnavailable { detail: format!(" with index {i} (it sees {count})") })
                } else {
                    Ok(Device::Cuda(i))
                }
            }
        }
    }
}

/// Loads libtorch's CUDA half (`libtorch_cuda.so`) into the process, once.
///
/// The linker keeps only the libraries a binary references, and nothing in tch references
/// `libtorch_cuda.so` directly, so a binary built against the CUDA wheel still starts with
/// CPU kernels only and libtorch reports no GPU. Loading the library registers its CUDA
/// kernels and hooks (its static initialisers run), as `import torch` does in Python. It is
/// done only when CUDA is asked for, so CPU runs never pay for the CUDA libraries.
fn load_cuda_backend() -> std::result::Result<(), String> {
    static LOADED: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            let name = c"libtorch_cuda.so";
            // SAFETY: dlopen with a valid NUL-terminated name; the handle is deliberately
            // never closed, since libtorch keeps pointers into the library for the process's life.
            let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
            if handle.is_null() {
                // SAFETY: dlerror returns a thread-local C string or null.
                let err = unsafe { libc::dlerror() };
                let msg = if err.is_null() {
                    "unknown error".to_owned()
                } else {
                    unsafe { std::ffi::CStr::from_ptr(err) }.to_string_lossy().into_owned()
                };
                Err(msg)
            } else {
                Ok(())
            }
        })
        .clone()
}

/// Sets libtorch's intra-op thread count (0 keeps libtorch's default, one per core).
pub fn set_threads(threads: usize) {
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
}

/// Writes named tensors as safetensors, atomically: to a temporary file in the same
/// directory, then renamed over `path`, so a crash never leaves a half-written file.
///
/// Names and layouts are PyTorch's (`encoder.conv1.weight`, Linear `[out, in]`), so
/// `safetensors.torch.load_file` gives a state dict a PyTorch module can load.
pub fn save_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let cpu: Vec<(String, Tensor)> =
        tensors.iter().map(|(n, t)| (n.clone(), t.to_device(Device::Cpu).contiguous())).collect();
    gradplan_fsio::replace_with(path, |tmp| {
        Tensor::write_safetensors(&cpu, tmp).map_err(std::io::Error::other)
    })
    .map_err(|source| Error::Write { path: path.to_owned(), source })
}

/// Reads every tensor of a safetensors file onto `device`.
pub fn load_safetensors(path: &Path, device: Device) -> Result<Vec<(String, Tensor)>> {
    let tensors = Tensor::read_safetensors(path)
        .map_err(|e| Error::CorruptWeights { path: path.to_owned(), detail: e.to_string() })?;
    Ok(tensors.into_iter().map(|(n, t)| (n, t.to_device(device))).collect())
}

/// A var store's parameters with their PyTorch-style names, sorted by name.
pub fn named_variables(vs: &tch::nn::VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Copies a safetensors file's tensors into the variables of `vs`, which must hold exactly
/// the same names and shapes.
pub fn load_into_var_store(vs: &tch::nn::VarStore, path: &Path) -> Result<()> {
    copy_into_var_store(vs, load_safetensors(path, vs.device())?, path)
}

/// [`load_into_var_store`] for tensors already read from `path` (named in errors), for a
/// caller that reads the file's shapes first.
pub fn copy_into_var_store(vs: &tch::nn::VarStore, loaded: Vec<(String, Tensor)>, path: &Path) -> Result<()> {
    let mut vars = vs.variables();
    let mismatch = |detail: String| Error::Mismatch { path: path.to_owned(), detail };
    if loaded.len() != vars.len() {
        return Err(mismatch(format!("it holds {} tensors, the network has {}", loaded.len(), vars.len())));
    }
    tch::no_grad(|| {
        for (name, value) in loaded {
            let var = vars.get_mut(&name).ok_or_else(|| mismatch(format!("unexpected tensor `{name}`")))?;
            if var.size() != value.size() {
                return Err(mismatch(format!(
                    "`{name}` has shape {:?}, the network expects {:?}",
                    value.size(),
                    var.size()
                )));
            }
            var.copy_(&value);
        }
        Ok(())
    })
}

/// For tests: seeds libtorch's random stream and holds it for the calling test. The stream
/// is global and the test harness runs tests on parallel threads, so a test that compares
/// two draws with the same seed needs every other test that draws to wait.
///
/// Also runs libtorch on one thread: the tests' tensors are tiny, and on a loaded machine
/// OpenMP's spinning workers made one test 20× slower (61 s against 3 s).
pub fn seeded_for_test(seed: i64) -> std::sync::MutexGuard<'static, ()> {
    static STREAM: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = STREAM.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::set_num_threads(1);
    tch::manual_seed(seed);
    guard
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn device_names_parse() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        for bad in ["gpu0", "cuda:", "cuda:x", "tpu"] {
            assert!(bad.parse::<DeviceSpec>().is_err(), "{bad}");
        }
        assert_eq!(DeviceSpec::Cuda(1).to_string(), "cuda:1");
    }

    #[test]
    fn cuda_request_fails_clearly_without_a_gpu() {
        if tch::Cuda::device_count() == 0 {
            let err = DeviceSpec::Cuda(0).resolve().unwrap_err().to_string();
            assert!(err.contains("--device cpu"), "{err}");
        }
        assert_eq!(DeviceSpec::Cpu.resolve().unwrap(), Device::Cpu);
    }

    #[test]
    fn safetensors_round_trip_is_exact_and_atomic() {
        let dir = std::env::temp_dir().join(format!("gradplan-backend-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.safetensors");
        tch::manual_seed(0);
        let w = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([4], (Kind::Float, Device::Cpu));
        save_safetensors(
            &path,
            &[("fc.weight".into(), w.shallow_clone()), ("fc.bias".into(), b.shallow_clone())],
        )
        .unwrap();
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 1, "temporary file left behind: {leftovers:?}");
        let back = load_safetensors(&path, Device::Cpu).unwrap();
        let get = |n: &str| back.iter().find(|(k, _)| k == n).map(|(_, t)| t.shallow_clone()).unwrap();
        assert!(get("fc.weight").equal(&w));
        assert!(get("fc.bias").equal(&b));
        assert_eq!(get("fc.weight").size(), vec![4, 3]);

        std::fs::write(&path, b"not a safetensors file").unwrap();
        let err = load_safetensors(&path, Device::Cpu).unwrap_err();
        assert!(matches!(err, Error::CorruptWeights { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
