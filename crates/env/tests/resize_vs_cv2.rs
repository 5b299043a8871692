//! `gradplan_env::resize::resize_linear` against OpenCV's `cv2.resize(INTER_LINEAR)` from
//! the project's `.venv/` (the resize the dm_control backend applies): random and smoothed
//! 240×320 frames made by numpy, shrunk to every square size from 8 to 240, byte for byte.
//! (Enlarging is not reproduced: 256×256 already differs, so the native backend refuses
//! `resize` above 240.)
#![cfg(feature = "dmc")]

use gradplan_env::dmc;
use gradplan_env::resize::resize_linear;
use std::process::Command;

const SCRIPT: &str = r#"
import sys
import cv2
import numpy as np

rng = np.random.default_rng(12)
sizes = list(range(8, 241))
out = sys.stdout.buffer
for i, size in enumerate(sizes):
    img = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    if i % 2:
        img = cv2.GaussianBlur(img, (9, 9), 3)
    ref = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    out.write(size.to_bytes(4, "little"))
    out.write(img.tobytes())
    out.write(np.ascontiguousarray(ref).tobytes())
"#;

#[test]
fn resize_is_byte_identical_to_cv2() {
    let venv = dmc::find_venv().expect("the project's .venv (run scripts/setup.sh)");
    let output = Command::new(venv.join("bin").join("python")).args(["-c", SCRIPT]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut rest = output.stdout.as_slice();
    let (h, w) = (240, 320);
    let mut cases = 0;
    while !rest.is_empty() {
        let size = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        rest = &rest[4..];
        let (img, tail) = rest.split_at(h * w * 3);
        let (want, tail) = tail.split_at(size * size * 3);
        rest = tail;
        let got = resize_linear(img, h, w, size, size);
        let off = got.iter().zip(want).filter(|(a, b)| a != b).count();
        assert_eq!(off, 0, "{size}x{size}: {off} of {} bytes differ from cv2", want.len());
        cases += 1;
    }
    assert_eq!(cases, 233);
}
