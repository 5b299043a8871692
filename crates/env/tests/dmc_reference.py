"""Independent reference for tests/dmc.rs: plays the same seeds and actions through plain
dm_control, the way the PyTorch PlaNet/Dreamer environment wrapper does, and reports the
rewards and frame hashes. Reads a JSON list of cases on stdin, writes a JSON list.
"""
import hashlib
import json
import os
import struct
import sys

os.environ.setdefault("MUJOCO_GL", "egl")
import cv2  # noqa: E402
import numpy as np  # noqa: E402
from dm_control import suite  # noqa: E402


def observe(env, ts, case):
    camera = 2 if case["task"].startswith("quadruped-") else 0
    if case["obs"] == "state":
        flat = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in ts.observation.values()])
        return flat.astype(np.float32).tobytes().hex()
    if case["pixel_mode"] == "resize":
        img = cv2.resize(env.physics.render(camera_id=camera), (64, 64), interpolation=cv2.INTER_LINEAR)
    else:
        img = env.physics.render(64, 64, camera_id=camera)
    return hashlib.sha256(np.ascontiguousarray(img).tobytes()).hexdigest()


def run(case):
    domain, task = case["task"].split("-", 1)
    env = suite.load(domain, task, task_kwargs={"random": case["seed"]})
    spec = env.action_spec()
    out = {"obs": [observe(env, env.reset(), case)], "rewards": []}
    for action in case["actions"]:
        a = np.clip(np.asarray(action, dtype=np.float64), spec.minimum, spec.maximum)
        reward = 0.0
        for _ in range(case["repeat"]):
            ts = env.step(a)
            reward += ts.reward
            if ts.last():
                break
        # The exact bits of the float64 sum, so the comparison is bit for bit.
        out["rewards"].append(struct.unpack("<Q", struct.pack("<d", float(reward)))[0])
        out["obs"].append(observe(env, ts, case))
    return out


if __name__ == "__main__":
    print(json.dumps([run(case) for case in json.load(sys.stdin)]))
