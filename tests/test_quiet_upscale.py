"""A quiet `mai-sr upscale` leaves tqdm unimported; without --quiet it still shows its bar."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _upscale_in_a_fresh_process(src: Path, dst: Path, *flags: str) -> subprocess.CompletedProcess:
    code = f"""
import sys
from mai_sr.cli import main
assert main(["upscale", {str(src)!r}, {str(dst)!r}, "--pretrained", "abpn", *{flags!r}]) == 0
print("TQDM", "tqdm" in sys.modules)
"""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_quiet_upscale_does_not_import_tqdm(shared_data, tmp_path):
    src = shared_data / "Set5" / "bird.png"
    quiet = _upscale_in_a_fresh_process(src, tmp_path / "quiet.png", "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert "TQDM False" in quiet.stdout and quiet.stderr == ""
    shown = _upscale_in_a_fresh_process(src, tmp_path / "shown.png")
    assert shown.returncode == 0, shown.stderr
    assert "TQDM True" in shown.stdout and "upscale: 100%" in shown.stderr
    assert (tmp_path / "quiet.png").read_bytes() == (tmp_path / "shown.png").read_bytes()

