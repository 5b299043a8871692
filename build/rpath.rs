//! Shared build script: embeds a RUNPATH so that binaries and test executables load the
//! libpython, libtorch and libmujoco they were linked against, without LD_LIBRARY_PATH.
//! (Link arguments of `gradplan-mujoco`'s own build script reach only its own targets, so
//! every crate above it that builds an executable needs the MuJoCo entry here too.)
//!
//! Without it the loader falls back to the system search path and silently picks Debian's
//! libpython 3.11.2 instead of the pyenv CPython the `.venv` was made from. RUNPATH (new
//! dtags) is used rather than RPATH so that LD_LIBRARY_PATH can still override it, which is
//! how a binary built here is pointed at another machine's libtorch.
use std::path::PathBuf;
use std::process::Command;

include!("mujoco_dir.rs");

pub fn main() {
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(python) = std::env::var("PYO3_PYTHON") {
        let out = Command::new(&python)
            .args(["-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"])
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let dir = String::from_utf8_lossy(&o.stdout).trim().to_owned();
                if !dir.is_empty() {
                    dirs.push(PathBuf::from(dir));
                }
            }
            _ => {
                println!("cargo:warning=could not run {python} to find libpython; run scripts/setup.sh first")
            }
        }
    }
    if let Ok(libtorch) = std::env::var("LIBTORCH") {
        dirs.push(PathBuf::from(libtorch).join("lib"));
    }
    dirs.extend(mujoco_lib_dir());
    println!("cargo:rustc-link-arg=-Wl,--enable-new-dtags");
    for dir in dirs {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    }
}
