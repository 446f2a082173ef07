"""The README's Python example runs as written (in a scratch folder, without TensorFlow),
and what it writes is the model's upscale of the file it read."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def readme_python_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.search(r"From Python, a shipped.*?```python\n(.*?)```", text, re.S).group(1)


def test_the_python_upscale_example_runs(tmp_path):
    photo = np.random.default_rng(1).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    (tmp_path / "photos").mkdir()
    Image.fromarray(photo[:30]).save(tmp_path / "photos" / "a.png")
    check = ("\nimport sys\nassert 'tensorflow' not in sys.modules\n"
             "np.save('direct.npy', model.upscale(read_image_rgb('photo.png')))\n")
    done = subprocess.run([sys.executable, "-c", readme_python_example() + check], cwd=tmp_path,
                          capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    written = np.asarray(Image.open(tmp_path / "photo_x3.png"))
    assert written.shape == (120, 156, 3)
    np.testing.assert_array_equal(written, np.load(tmp_path / "direct.npy"))
    assert Image.open(tmp_path / "photos_x3" / "a.png").size == (156, 90)
