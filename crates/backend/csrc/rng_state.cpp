// Save and restore libtorch's default random generators (CPU, and one CUDA device), which
// tch 0.24 does not expose. gradplan uses them to interleave several episodes on one
// thread while each keeps the random stream it would have had alone (crates/backend/src/rng.rs).
//
// Tensors cross the boundary as `at::Tensor*`, the handle tch's C API uses, so Rust wraps
// them with `tch::Tensor::from_ptr`. Every function catches C++ exceptions and reports
// failure by its return value; the message is kept for `gp_rng_last_error`.
#include <ATen/Context.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/Generator.h>
#include <ATen/CPUGeneratorImpl.h>
#include <exception>
#include <mutex>
#include <string>

namespace {
thread_local std::string last_error;

at::Generator generator(int cuda_index) {
  if (cuda_index < 0) {
    return at::detail::getDefaultCPUGenerator();
  }
  return at::globalContext().defaultGenerator(
      at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(cuda_index)));
}
}  // namespace

extern "C" {

// The state of the CPU generator (cuda_index < 0) or of CUDA device cuda_index's, as a new
// uint8 tensor the caller owns; null on failure.
void* gp_rng_get_state(int cuda_index) {
  try {
    at::Generator gen = generator(cuda_index);
    std::lock_guard<std::mutex> lock(gen.mutex());
    return new at::Tensor(gen.get_state());
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown C++ exception";
  }
  return nullptr;
}

// Puts a state read by gp_rng_get_state back; 0 on success.
int gp_rng_set_state(int cuda_index, const void* state) {
  try {
    at::Generator gen = generator(cuda_index);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(*static_cast<const at::Tensor*>(state));
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown C++ exception";
  }
  return 1;
}

// The message of this thread's last failure.
const char* gp_rng_last_error() { return last_error.c_str(); }

}  // extern "C"
