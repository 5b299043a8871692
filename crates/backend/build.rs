//! The shared RUNPATH build script (`build/rpath.rs`), plus the small C++ shim over
//! libtorch's random generators (`csrc/rng_state.cpp`, see `src/rng.rs`), compiled against
//! the libtorch headers of the `LIBTORCH` that tch links (set by `.cargo/config.toml`).
#[path = "../../build/rpath.rs"]
mod rpath;

use std::path::PathBuf;

fn main() {
    rpath::main();
    println!("cargo:rerun-if-changed=csrc/rng_state.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    // torch-sys (links = "tch") tells dependents where libtorch's libraries are; the headers
    // sit beside them. LIBTORCH is the fallback when that is missing.
    let root = match std::env::var("DEP_TCH_LIBTORCH_LIB") {
        Ok(lib) => PathBuf::from(lib).parent().map(PathBuf::from).unwrap_or_default(),
        Err(_) => PathBuf::from(std::env::var("LIBTORCH").unwrap_or_else(|_| {
            panic!("LIBTORCH is not set; run scripts/setup.sh (it installs torch 2.11.0 into .venv)")
        })),
    };
    let include = root.join("include");
    if !include.join("ATen").is_dir() {
        panic!(
            "libtorch's headers are not in {}; run scripts/setup.sh, or point LIBTORCH at a libtorch 2.11 \
             with its include directory",
            include.display()
        );
    }
    // The wheels and libtorch 2.11 builds use the new C++ ABI, as torch-sys assumes too.
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("csrc/rng_state.cpp")
        .compile("gradplan_rng");
}
