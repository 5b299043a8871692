//! Saving and restoring libtorch's default random generators.
//!
//! Planners and the RSSM's posterior draw from libtorch's global generators (the CPU one,
//! and the CUDA device's for tensors on a GPU), seeded per episode by `tch::manual_seed`.
//! To interleave several episodes on one thread (several environments stepping in parallel
//! while one thread plans for each in turn) and still give every episode the random stream
//! it would have had alone, each episode keeps a [`RngState`] that is put back before its
//! draws and read again after them. tch 0.24 exposes no generator API, so this goes
//! through a small C++ shim (`csrc/rng_state.cpp`, built by this crate's build script).

use crate::{Error, Result};
use std::ffi::{c_char, c_int, c_void, CStr};
use tch::{Device, Tensor};

extern "C" {
    fn gp_rng_get_state(cuda_index: c_int) -> *mut c_void;
    fn gp_rng_set_state(cuda_index: c_int, state: *const c_void) -> c_int;
    fn gp_rng_last_error() -> *const c_char;
}

/// The generators' states that draws on `device` use: the CPU generator's always, and the
/// CUDA device's too when `device` is a GPU.
pub struct RngState {
    cpu: Tensor,
    cuda: Option<(usize, Tensor)>,
}

impl std::fmt::Debug for RngState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RngState").field("cuda", &self.cuda.as_ref().map(|c| c.0)).finish_non_exhaustive()
    }
}

fn shim_error(what: &str) -> Error {
    // SAFETY: the shim returns a pointer to its thread-local, NUL-terminated message, valid
    // until this thread's next call into it.
    let detail = unsafe { CStr::from_ptr(gp_rng_last_error()) }.to_string_lossy().into_owned();
    Error::Rng(format!("{what}: {detail}"))
}

fn read(cuda_index: c_int) -> Result<Tensor> {
    // SAFETY: a non-null result is a heap `at::Tensor*` whose ownership passes to us, which
    // is what `Tensor::from_ptr` takes over.
    let ptr = unsafe { gp_rng_get_state(cuda_index) };
    if ptr.is_null() {
        return Err(shim_error("reading libtorch's random generator"));
    }
    Ok(unsafe { Tensor::from_ptr(ptr.cast()) })
}

fn write(cuda_index: c_int, state: &Tensor) -> Result<()> {
    // SAFETY: `as_ptr` is the live `at::Tensor*` behind `state`; the shim only reads it.
    if unsafe { gp_rng_set_state(cuda_index, state.as_ptr() as *const c_void) } != 0 {
        return Err(shim_error("restoring libtorch's random generator"));
    }
    Ok(())
}

impl RngState {
    /// The current states of the generators that draws on `device` use.
    pub fn capture(device: Device) -> Result<RngState> {
        let cuda = match device {
            Device::Cuda(i) => Some((i, read(i as c_int)?)),
            _ => None,
        };
        Ok(RngState { cpu: read(-1)?, cuda })
    }

    /// The states right after `tch::manual_seed(seed)`, which it leaves in place.
    pub fn seeded(seed: i64, device: Device) -> Result<RngState> {
        tch::manual_seed(seed);
        RngState::capture(device)
    }

    /// Puts these states back, so the next draws repeat those that followed the capture.
    pub fn restore(&self) -> Result<()> {
        write(-1, &self.cpu)?;
        if let Some((i, state)) = &self.cuda {
            write(*i as c_int, state)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn a_restored_state_repeats_the_draws_that_followed_it() {
        let _stream = crate::seeded_for_test(7);
        let state = RngState::capture(Device::Cpu).unwrap();
        let first = Tensor::randn([64], (Kind::Float, Device::Cpu));
        let _ = Tensor::rand([1000], (Kind::Float, Device::Cpu));
        state.restore().unwrap();
        let again = Tensor::randn([64], (Kind::Float, Device::Cpu));
        assert!(first.equal(&again));
    }

    #[test]
    fn interleaved_streams_equal_the_streams_alone() {
        // Two seeded streams drawn alternately, each restored before and captured after its
        // draws, give what each stream gives on its own.
        let _stream = crate::seeded_for_test(0);
        let alone = |seed: i64| -> Vec<Tensor> {
            tch::manual_seed(seed);
            (0..3).map(|i| Tensor::randn([5 + i], (Kind::Float, Device::Cpu))).collect()
        };
        let (a, b) = (alone(11), alone(12));
        let mut states =
            [RngState::seeded(11, Device::Cpu).unwrap(), RngState::seeded(12, Device::Cpu).unwrap()];
        let mut drawn: [Vec<Tensor>; 2] = [Vec::new(), Vec::new()];
        for i in 0..3 {
            for k in 0..2 {
                states[k].restore().unwrap();
                drawn[k].push(Tensor::randn([5 + i], (Kind::Float, Device::Cpu)));
                states[k] = RngState::capture(Device::Cpu).unwrap();
            }
        }
        for (want, got) in [(&a, &drawn[0]), (&b, &drawn[1])] {
            for (w, g) in want.iter().zip(got) {
                assert!(w.equal(g));
            }
        }
        assert!(!a[0].equal(&b[0]), "two seeds gave one stream");
    }
}
