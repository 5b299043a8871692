// Shared by `crates/mujoco/build.rs` (which links libmujoco) and `build/rpath.rs` (which
// embeds a RUNPATH to it in every binary and test of a crate that uses it): one rule for
// where libmujoco 3.17.0 lives, so the linker and the loader agree.

/// The file name of the MuJoCo library the committed bindings were generated against.
const MUJOCO_LIB_FILE: &str = "libmujoco.so.3.17.0";

/// The directory holding `libmujoco.so.3.17.0`: `$GRADPLAN_MUJOCO_LIB`, else the pinned
/// `mujoco` wheel in the checkout's `.venv/` (made by `scripts/setup.sh`).
fn mujoco_lib_dir() -> Option<std::path::PathBuf> {
    println!("cargo:rerun-if-env-changed=GRADPLAN_MUJOCO_LIB");
    if let Some(dir) = std::env::var_os("GRADPLAN_MUJOCO_LIB") {
        return Some(std::path::PathBuf::from(dir));
    }
    let manifest = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let lib = manifest.ancestors().map(|d| d.join(".venv").join("lib")).find(|d| d.is_dir())?;
    // The Python minor version is whatever the venv was made with (3.11 here).
    let mut pythons: Vec<_> = std::fs::read_dir(&lib).ok()?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    pythons.sort();
    pythons
        .into_iter()
        .map(|p| p.join("site-packages").join("mujoco"))
        .find(|d| d.join(MUJOCO_LIB_FILE).is_file())
}
