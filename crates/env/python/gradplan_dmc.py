"""gradplan's bridge to dm_control.suite, run inside the gradplan binary's embedded Python.

Each gradplan decision is one call to `Task.step`, which repeats the action for the action
repeat, sums the rewards in order as Python floats, and renders once at the end, so a
decision costs one crossing between Rust and Python. Users never import this module.
"""
import os

# MuJoCo picks its GL backend when dm_control is imported; headless machines need EGL.
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

# dm_control 1.0.50 on MuJoCo 3.17 warns about deprecated XML attributes on every load;
# that is noise to a gradplan user.
absl_logging.set_verbosity(absl_logging.ERROR)

# dm_control's default render size, which the PyTorch PlaNet/Dreamer code rendered at
# before resizing to 64x64.
DEFAULT_RENDER_HEIGHT = 240
DEFAULT_RENDER_WIDTH = 320


def all_tasks():
    from dm_control import suite

    return [f"{domain}-{task}" for domain, task in suite.ALL_TASKS]


def close_matches(name, limit=3):
    import difflib

    return difflib.get_close_matches(name, all_tasks(), n=limit, cutoff=0.5)


class Task:
    def __init__(self, domain, task, seed, pixels, resize, size, camera):
        from dm_control import suite

        self.env = suite.load(domain, task, task_kwargs={"random": seed})
        self.pixels = pixels
        self.resize = resize
        self.size = size
        self.camera = camera
        spec = self.env.action_spec()
        self.action_low = np.broadcast_to(spec.minimum, spec.shape).astype(np.float64).tolist()
        self.action_high = np.broadcast_to(spec.maximum, spec.shape).astype(np.float64).tolist()
        self.state_dim = int(
            sum(int(np.prod(v.shape)) for v in self.env.observation_spec().values())
        )
        self.step_limit = int(self.env._step_limit) if np.isfinite(self.env._step_limit) else -1
        # Cameras the model defines; camera_id -1 is MuJoCo's free camera.
        self.cameras = int(self.env.physics.model.ncam)

    def frame(self):
        physics = self.env.physics
        if self.resize:
            import cv2

            big = physics.render(DEFAULT_RENDER_HEIGHT, DEFAULT_RENDER_WIDTH, camera_id=self.camera)
            img = cv2.resize(big, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        else:
            img = physics.render(self.size, self.size, camera_id=self.camera)
        return np.ascontiguousarray(img, dtype=np.uint8).tobytes()

    def render(self, height, width):
        img = self.env.physics.render(height, width, camera_id=self.camera)
        return np.ascontiguousarray(img, dtype=np.uint8).tobytes()

    def observation(self, time_step):
        if self.pixels:
            return self.frame()
        # The observation dict flattened in its own (task-defined) key order, as PlaNet does.
        parts = [np.asarray(v, dtype=np.float64).ravel() for v in time_step.observation.values()]
        return np.concatenate(parts).astype(np.float32).tobytes()

    def reset(self, seed):
        if seed is not None:
            # Same state as suite.load(..., task_kwargs={'random': seed}): the task's RNG is
            # the only source of randomness in an episode's initial state.
            self.env.task._random = np.random.RandomState(seed)
        return self.observation(self.env.reset())

    def step(self, action, repeat, max_steps):
        """Repeats `action` for up to `repeat` simulator steps (fewer at the episode's end).

        Returns (reward_sum, sim_steps, terminal, last, observation bytes)."""
        action = np.asarray(action, dtype=np.float64)
        reward = 0.0
        steps = 0
        time_step = None
        while steps < min(repeat, max_steps):
            time_step = self.env.step(action)
            reward += time_step.reward or 0.0
            steps += 1
            if time_step.last():
                break
        last = time_step.last()
        terminal = bool(last and time_step.discount == 0.0)
        return reward, steps, terminal, bool(last), self.observation(time_step)
