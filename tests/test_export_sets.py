"""A fixed file and its dynamic twin are one export wherever either is read: eval, upscale
and bench refuse a torn set (two exports' files under one name), as report does."""

import shutil

import numpy as np
import pytest
from PIL import Image

from mai_sr.cli import main
from mai_sr.pretrained import pretrained_path


@pytest.fixture
def image(tmp_path):
    folder = tmp_path / "img"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 60, 3), dtype=np.uint8)).save(folder / "a.png")
    return folder


def torn_set(folder):
    """abpn's fixed file beside xcat's dynamic file: what a kill between export's renames
    (or a file replaced by hand) leaves."""
    folder.mkdir()
    shutil.copy(pretrained_path("abpn", "fixed"), folder / "m.tflite")
    shutil.copy(pretrained_path("xcat", "dynamic"), folder / "m_none.tflite")
    return folder / "m.tflite", folder / "m_none.tflite"


TORN = "m.tflite and m_none.tflite are not one export (their model"


def test_eval_upscale_and_bench_refuse_either_file_of_a_torn_set(tmp_path, image, capsys):
    fixed, dynamic = torn_set(tmp_path / "set")
    commands = [["eval", str(dynamic), "--data", str(image), "--quiet"],
                ["eval", str(fixed), "--data", str(image), "--quiet"],
                ["upscale", str(image / "a.png"), str(tmp_path / "o.png"), "--model",
                 str(dynamic), "--quiet"],
                ["bench", str(fixed), "--runner", "local", "--runs", "1"]]
    for argv in commands:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert TORN in err and err.count("\n") == 1, argv
    assert not (tmp_path / "o.png").exists()


def test_one_export_set_and_a_lone_file_are_read_as_before(tmp_path, image, capsys):
    folder = tmp_path / "set"
    folder.mkdir()
    shutil.copy(pretrained_path("abpn", "fixed"), folder / "m.tflite")
    shutil.copy(pretrained_path("abpn", "dynamic"), folder / "m_none.tflite")
    assert main(["eval", str(folder / "m_none.tflite"), "--data", str(image), "--quiet"]) == 0
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(pretrained_path("xcat", "dynamic"), lone / "m_none.tflite")
    assert main(["eval", str(lone / "m_none.tflite"), "--data", str(image), "--quiet"]) == 0
