//! Finding the project's Python virtualenv, which both backends read from: the dm_control
//! backend runs its interpreter, the native backend reads dm_control's task files from it.

use crate::{Error, Result};
use std::path::PathBuf;

/// Environment variable naming the Python environment to use instead of `.venv/`.
pub const VENV_VAR: &str = "GRADPLAN_VENV";

/// Finds the project's virtualenv: `$GRADPLAN_VENV`, else a `.venv/` in an ancestor of the
/// executable (a checkout's `target/release/gradplan` finds the checkout's `.venv/`), else in
/// an ancestor of the working directory.
pub fn find_venv() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(VENV_VAR) {
        let dir = PathBuf::from(dir);
        return if dir.join("pyvenv.cfg").is_file() || dir.join("lib").is_dir() {
            Ok(dir)
        } else {
            Err(Error::NoPythonEnv {
                searched: format!(" ({VENV_VAR}={} is not a virtualenv)", dir.display()),
            })
        };
    }
    let mut searched = Vec::new();
    let exe = std::env::current_exe().ok();
    let cwd = std::env::current_dir().ok();
    for start in exe.iter().chain(cwd.iter()) {
        for dir in start.ancestors() {
            let candidate = dir.join(".venv");
            if candidate.join("pyvenv.cfg").is_file() {
                return Ok(candidate);
            }
        }
        searched.push(start.display().to_string());
    }
    Err(Error::NoPythonEnv {
        searched: format!(" (looked for .venv/ above {} and in ${VENV_VAR})", searched.join(" and ")),
    })
}
