"""The Python side of `gradplan bench env`: the same loop as the Rust benchmark, written
the way a dm_control user would, timed in the same process conditions.

Usage: python bench_env_reference.py TASK STEPS RENDERS SIZE  -> one JSON line.
"""
import json
import os
import sys
import time

os.environ.setdefault("MUJOCO_GL", "egl")
import numpy as np  # noqa: E402
from dm_control import suite  # noqa: E402


def main():
    task, steps, renders, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    domain, name = task.split("-", 1)
    env = suite.load(domain, name, task_kwargs={"random": 0})
    spec = env.action_spec()
    rng = np.random.RandomState(0)
    camera = 2 if domain == "quadruped" else 0
    env.reset()
    actions = rng.uniform(spec.minimum, spec.maximum, size=(steps,) + spec.shape)
    start = time.perf_counter()
    for i in range(steps):
        if env.step(actions[i]).last():
            env.reset()
    step_s = (time.perf_counter() - start) / steps
    env.physics.render(size, size, camera_id=camera)  # first render creates the GL context
    start = time.perf_counter()
    for _ in range(renders):
        env.physics.render(size, size, camera_id=camera)
    render_s = (time.perf_counter() - start) / renders
    print(json.dumps({"step_us": step_s * 1e6, "render_ms": render_s * 1e3}))


if __name__ == "__main__":
    main()
