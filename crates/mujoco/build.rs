//! Links libmujoco 3.17.0 (the library the pinned `mujoco` wheel ships) and embeds a RUNPATH
//! to its directory so this crate's tests find it without LD_LIBRARY_PATH.

include!("../../build/mujoco_dir.rs");

fn main() {
    let Some(dir) = mujoco_lib_dir() else {
        panic!(
            "{MUJOCO_LIB_FILE} not found: run scripts/setup.sh (it installs the pinned mujoco \
             wheel into .venv/), or set GRADPLAN_MUJOCO_LIB to a directory holding {MUJOCO_LIB_FILE}"
        );
    };
    if !dir.join(MUJOCO_LIB_FILE).is_file() {
        panic!("GRADPLAN_MUJOCO_LIB={} holds no {MUJOCO_LIB_FILE}", dir.display());
    }
    println!("cargo:rustc-link-search=native={}", dir.display());
    // The wheel ships only the versioned file (no libmujoco.so symlink), so link it by name.
    println!("cargo:rustc-link-lib=dylib:+verbatim={MUJOCO_LIB_FILE}");
    println!("cargo:rustc-link-arg=-Wl,--enable-new-dtags");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    println!("cargo:lib_dir={}", dir.display());
}
