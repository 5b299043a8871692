// Headers of the pinned MuJoCo 3.17.0 wheel, for bindgen.
#include <mujoco/mujoco.h>
