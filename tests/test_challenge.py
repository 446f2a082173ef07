"""The challenge's setting as data (mai_sr.challenge) and which scores are challenge scores."""

import subprocess
import sys
from pathlib import Path

import pytest

from mai_sr.challenge import CHALLENGE_LR_HW, CHALLENGE_SCALE, timing_input
from mai_sr.errors import MaiSrError
from mai_sr.registry import SCALES
from mai_sr.report.challenge import (CHALLENGE_RUNTIME, CHALLENGE_TEST_SET, is_challenge_score,
                                     score_caveats)

ROOT = Path(__file__).resolve().parents[1]


def test_each_scale_has_a_timing_input():
    # Ignatov et al., ECCV 2022 Workshops challenge report: x3, 640x360 LR -> 1920x1080.
    assert (CHALLENGE_SCALE, CHALLENGE_LR_HW) == (3, (360, 640))
    assert [CHALLENGE_LR_HW[0] * 3, CHALLENGE_LR_HW[1] * 3] == [1080, 1920]
    # AIM 2020 / NTIRE 2023 efficient SR: x4, profiled on a 256x256 LR image.
    assert timing_input(4) == (256, 256)
    # x2 keeps the challenge's 1920x1080 output.
    assert [d * 2 for d in timing_input(2)] == [1080, 1920]
    assert all(min(timing_input(s)) > 0 for s in SCALES)
    with pytest.raises(MaiSrError, match="scale 5: no timing input"):
        timing_input(5)


def test_other_scales_still_score_but_are_labelled_not_a_challenge_score():
    """The report's one predicate: the scale, and each scale's own timing input, count."""
    challenge = dict(dataset=CHALLENGE_TEST_SET, runtime_source=CHALLENGE_RUNTIME)
    assert is_challenge_score(scale=3, input_hw=timing_input(3), **challenge)
    for scale in (2, 4):
        assert score_caveats(scale=scale, input_hw=CHALLENGE_LR_HW, **challenge) == [f"x{scale}"]
        h, w = timing_input(scale)
        assert score_caveats(scale=scale, input_hw=(h, w), **challenge) == [
            f"x{scale}", f"{h}x{w} input"]


def test_the_named_challenge_input_is_defined_once():
    """No module restates the scale or the 360x640 input as a bare constant of its own."""
    found = subprocess.run(["grep", "-rnE", "--include=*.py", r"^\s*SCALE = 3|\(360, 640\)",
                            "mai_sr/train", "mai_sr/export", "mai_sr/models", "mai_sr/qat",
                            "mai_sr/report/build.py", "mai_sr/profile.py", "mai_sr/data.py",
                            "mai_sr/runs.py", "mai_sr/challenge.py", "mai_sr/cli.py",
                            "mai_sr/report/challenge.py"],
                           cwd=ROOT, capture_output=True, text=True).stdout.splitlines()
    assert len(found) == 1 and found[0].startswith("mai_sr/challenge.py:"), found


def test_the_challenge_module_imports_no_tensorflow():
    code = "import sys, mai_sr.challenge, mai_sr.registry; print('tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
