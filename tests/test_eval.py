"""`mai-sr eval` / mai_sr.evaluate: scores equal independent references on real images.

Model files come from tests/tflite_factory.py (raw TF ops, no project code), prebuilt in
tests/data. The references
here run the .tflite through the bare LiteRT Interpreter and compute the bicubic baseline
with Pillow and scikit-image, so they share no code with mai_sr.evaluate or mai_sr.tflite.runtime.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import link_images
from ai_edge_litert.interpreter import Interpreter
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mai_sr import fileio
from mai_sr.cli import main
from mai_sr.errors import MaiSrError
from mai_sr.evaluate import evaluate_tflite
from mai_sr.metrics import psnr, ssim
from mai_sr.training_data import suggest_test_set
from tflite_factory import prebuilt

# LR size the fixed-shape test model is built for; every Set5 LR image is larger.
FIXED_SHAPE = (24, 32)
# kind -> prebuilt test model (tests/data): uint8 IO unless named
MODEL_KINDS = {"dynamic": "dynamic", "fixed": "int8", "int8_io": "dynamic_int8_io",
               "float": "dynamic_float"}


def built_model(tmp_path_factory, kind: str) -> Path:
    """A factory model copied once per test session (shared by test_eval and test_upscale)."""
    path = tmp_path_factory.getbasetemp() / "factory_models" / f"{kind}.tflite"
    if not path.exists():
        prebuilt(MODEL_KINDS[kind], path)
    return path


@pytest.fixture(scope="session")
def dynamic_model(tmp_path_factory) -> Path:
    return built_model(tmp_path_factory, "dynamic")


@pytest.fixture(scope="session")
def eval_folder(shared_data, tmp_path_factory) -> Path:
    """Three real images: a greyscale one (bridge, mode L), odd sizes (comic), and bird."""
    return link_images(tmp_path_factory.mktemp("eval_images"), shared_data,
                       ("Set14/bridge.png", "Set14/comic.png", "Set5/bird.png"))


def reference_scores(model_path: Path, folder: Path, crop: int = 3):
    """Per image: (name, psnr, ssim, bicubic psnr, bicubic ssim), computed independently."""
    rows = []
    for path in sorted(folder.glob("*.png")):
        hr = np.asarray(Image.open(path).convert("RGB"))
        hr = hr[:hr.shape[0] // 3 * 3, :hr.shape[1] // 3 * 3]
        h, w = hr.shape[0] // 3, hr.shape[1] // 3
        lr_img = Image.fromarray(hr).resize((w, h), Image.BICUBIC, reducing_gap=None)
        lr = np.asarray(lr_img)
        interpreter = Interpreter(model_path=str(model_path))
        interpreter.resize_tensor_input(0, [1, h, w, 3])
        interpreter.allocate_tensors()
        # The factory's input scale is 0.9995 with zero point 0: quantizing 0..255 is identity.
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], lr[None])
        interpreter.invoke()
        sr = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
        bicubic = np.asarray(lr_img.resize((3 * w, 3 * h), Image.BICUBIC))
        c = (slice(crop, -crop), slice(crop, -crop))
        rows.append((path.stem, psnr(sr, hr, crop=crop), ssim(sr, hr, crop=crop),
                     peak_signal_noise_ratio(hr[c], bicubic[c], data_range=255),
                     structural_similarity(hr[c], bicubic[c], data_range=255, channel_axis=2,
                                           gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False)))
    return rows


def test_eval_matches_independent_reference(dynamic_model, eval_folder):
    (result,) = evaluate_tflite(dynamic_model, [str(eval_folder)], quiet=True)
    expected = reference_scores(dynamic_model, eval_folder)
    assert [i.name for i in result.images] == [r[0] for r in expected]
    for image, (_, p, s, bp, bs) in zip(result.images, expected):
        assert image.psnr == pytest.approx(p, abs=1e-9)
        assert image.ssim == pytest.approx(s, abs=1e-9)
        assert image.bicubic_psnr == pytest.approx(bp, abs=1e-6)
        assert image.bicubic_ssim == pytest.approx(bs, abs=1e-6)
    assert result.psnr == pytest.approx(np.mean([r[1] for r in expected]), abs=1e-9)
    assert result.dataset == eval_folder.name and result.crop == 3
    # comic is 250x361: HR cropped to a multiple of 3
    comic = next(i for i in result.images if i.name == "comic")
    assert (comic.width, comic.height) == (249, 360)


def test_fixed_shape_eval_equals_dynamic_eval(tmp_path_factory, dynamic_model, shared_data):
    # Set5 LR images are all larger than the 24x32 tiles, so tiling is exact everywhere.
    fixed = built_model(tmp_path_factory, "fixed")
    (tiled,) = evaluate_tflite(fixed, [str(shared_data / "Set5")], quiet=True)
    (whole,) = evaluate_tflite(dynamic_model, [str(shared_data / "Set5")], quiet=True)
    assert [i.psnr for i in tiled.images] == [i.psnr for i in whole.images]
    assert [i.ssim for i in tiled.images] == [i.ssim for i in whole.images]
    assert len(tiled.images) == 5


def test_cli_csv_json_save_dir_and_y(dynamic_model, eval_folder, tmp_path, capsys):
    rows_path, save_dir = tmp_path / "rows.csv", tmp_path / "sr"
    rc = main(["eval", str(dynamic_model), "--data", str(eval_folder), "--y", "--crop", "4",
               "--csv", str(rows_path), "--save-dir", str(save_dir), "--json", "--quiet"])
    assert rc == 0
    (printed,) = json.loads(capsys.readouterr().out)
    assert printed["y_channel"] is True and printed["crop"] == 4
    with open(rows_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == ["bird", "bridge", "comic"]
    for row, image in zip(rows, printed["images"]):
        assert float(row["psnr"]) == pytest.approx(image["psnr"], abs=1e-4)
        sr = np.asarray(Image.open(save_dir / eval_folder.name / f"{row['image']}.png"))
        assert sr.shape == (image["height"], image["width"], 3)
        hr = np.asarray(Image.open(eval_folder / f"{row['image']}.png").convert("RGB"))
        hr = hr[:sr.shape[0], :sr.shape[1]]
        assert image["psnr"] == pytest.approx(psnr(sr, hr, crop=4, y_channel=True), abs=1e-9)
    assert abs(printed["mean"]["psnr"] - np.mean([i["psnr"] for i in printed["images"]])) < 1e-9


def test_cli_table(dynamic_model, eval_folder, capsys):
    assert main(["eval", str(dynamic_model), "--data", f"{eval_folder},{eval_folder}",
                 "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "RGB" in lines[0] and "bicubic PSNR" in lines[1]
    assert len(lines) == 4 and lines[2].split()[:2] == [eval_folder.name, "3"]


def _one_line_error(capsys, argv, *fragments):
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("mai-sr eval: error: ")
    for fragment in fragments:
        assert fragment in err
    return err


def test_bad_inputs_give_one_line_errors(tmp_path_factory, dynamic_model, eval_folder, tmp_path,
                                         capsys):
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(dynamic_model.read_bytes()[:3000])
    _one_line_error(capsys, ["eval", str(truncated)], str(truncated), "TFLite")
    not_tflite = tmp_path / "photo.tflite"
    not_tflite.write_bytes((eval_folder / "bird.png").read_bytes())
    _one_line_error(capsys, ["eval", str(not_tflite)], str(not_tflite), "TFLite model")
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("no images here")
    _one_line_error(capsys, ["eval", str(dynamic_model), "--data", str(empty), "--quiet"],
                    str(empty), "no images")
    _one_line_error(capsys, ["eval", str(dynamic_model), "--data", "Set14-nowhere"],
                    "Set14-nowhere", "no such folder")
    _one_line_error(capsys, ["eval"], "no model")


def test_float_model_is_scored_and_said_to_be_float(tmp_path_factory, eval_folder, tmp_path,
                                                   capsys):
    """A float32 file (the FP32 reference of an INT8 export) is scored like any other, its
    output rounded to pixels as a bare interpreter's is, and the table says what it is."""
    float_model = built_model(tmp_path_factory, "float")
    with pytest.raises(MaiSrError, match="float"):
        evaluate_tflite(float_model, str(eval_folder), quiet=True, require_int8=True)
    assert main(["eval", str(float_model), "--data", str(eval_folder), "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "float32 model" in lines[0] and "not an INT8 score" in lines[0]
    assert main(["eval", str(float_model), "--data", str(eval_folder), "--quiet",
                 "--json"]) == 0
    (printed,) = json.loads(capsys.readouterr().out)
    assert printed["precision"] == "fp32" and printed["notes"] == []
    for image in printed["images"]:
        hr = np.asarray(Image.open(eval_folder / f"{image['name']}.png").convert("RGB"))
        hr = hr[:hr.shape[0] // 3 * 3, :hr.shape[1] // 3 * 3]
        lr = np.asarray(Image.fromarray(hr).resize((hr.shape[1] // 3, hr.shape[0] // 3),
                                                   Image.BICUBIC, reducing_gap=None))
        interpreter = Interpreter(model_path=str(float_model))
        interpreter.resize_tensor_input(0, [1, *lr.shape])
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                               lr[None].astype(np.float32))
        interpreter.invoke()
        out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
        sr = np.clip(np.round(out), 0, 255).astype(np.uint8)
        c = (slice(3, -3), slice(3, -3))
        assert image["psnr"] == pytest.approx(
            peak_signal_noise_ratio(hr[c], sr[c], data_range=255), abs=1e-9)
    assert main(["upscale", str(eval_folder / "bird.png"), str(tmp_path / "bird_x3.png"),
                 "--model", str(float_model)]) == 0
    assert f"{float_model}: float32 model (float compute, not INT8)" in capsys.readouterr().err


def test_builtin_photos_are_said_not_to_be_a_test_set(dynamic_model, capsys):
    """The default data is the training photos of `mai-sr train`: the table marks the row and
    says so, pointing to --data."""
    assert main(["eval", str(dynamic_model), "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("builtin*") and lines[2].split()[1] == "9"
    note = " ".join(lines[3:])
    assert note.startswith("* builtin: ") and "not a test set" in note and "--data" in note
    assert max(len(line) for line in lines) <= 100


def test_training_images_of_the_model_are_named(dynamic_model, eval_folder, tmp_path, capsys):
    """An export records the images its run trained and validated on: eval on those says
    how many of them it scores, and names the run."""
    model = tmp_path / "model_none.tflite"
    model.write_bytes(dynamic_model.read_bytes())
    training = {"data": [eval_folder.name], "val": None, "images": ["bird", "comic"],
                "val_images": ["bridge"]}
    (tmp_path / "model_none.tflite.json").write_text(json.dumps(
        {"sha256": fileio.sha256_file(model), "source": {"run": "abpn-1", "training": training}}))
    (result,) = evaluate_tflite(model, str(eval_folder), quiet=True)
    assert result.notes == (f"{eval_folder.name}: 2 of these 3 images are this model's training "
                            "images and 1 its validation image (run abpn-1): not a test score; "
                            f"for one give {suggest_test_set()}",)
    training["data"] = ["T91"]  # the same names in another folder are other images
    (tmp_path / "model_none.tflite.json").write_text(json.dumps(
        {"sha256": fileio.sha256_file(model), "source": {"run": "abpn-1", "training": training}}))
    (other,) = evaluate_tflite(model, str(eval_folder), quiet=True)
    assert other.notes == ()


# ------------------------------------------------------------ third-party files


@pytest.mark.slow
def test_third_party_ncnet_files_evaluate(shared_artifacts, shared_data, capsys):
    """MegSR's published NCNet, as shipped: dynamic uint8 IO, the same INT8 network with
    float32 IO, and the fixed 1x360x640x3 file with input scale 0.9765 (tiled). Set5 RGB
    31.58 dB is the figure measured on these files (the folder's SOURCES.md)."""
    folder = shared_artifacts / "megsr_ncnet"
    set5 = str(shared_data / "Set5")
    (dynamic,) = evaluate_tflite(folder / "model_none.tflite", set5, quiet=True)
    (float_io,) = evaluate_tflite(folder / "model_none_float.tflite", set5)
    assert dynamic.psnr == pytest.approx(31.58, abs=0.01)
    assert float_io.psnr == pytest.approx(dynamic.psnr, abs=1e-3)
    err = capsys.readouterr().err
    assert "INT8 network with float32 input and output" in err
    (fixed,) = evaluate_tflite(folder / "model.tflite", set5, quiet=True)
    # tiled at 360x640 with the input scale applied: not the 0.8 dB loss of raw pixels
    assert fixed.psnr == pytest.approx(dynamic.psnr, abs=0.05)


# ---------------------------------------------------------------- baseline cache and pipeline


@pytest.fixture(autouse=True)
def private_cache_home(tmp_path, monkeypatch):
    """Every test gets its own $XDG_CACHE_HOME: none reads or fills the user's cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    return tmp_path / "xdg-cache" / "mai-sr"


def _rows(result):
    return [(r.name, r.height, r.width, r.psnr, r.ssim, r.bicubic_psnr, r.bicubic_ssim)
            for r in result.images]


def test_bicubic_rows_cached_once_and_shared(dynamic_model, eval_folder, private_cache_home,
                                             monkeypatch):
    from mai_sr import scoring  # where the bicubic baseline is computed

    (uncached,) = evaluate_tflite(dynamic_model, str(eval_folder), quiet=True, use_cache=False)
    assert not private_cache_home.exists()
    (first,) = evaluate_tflite(dynamic_model, str(eval_folder), quiet=True)
    entries = list((private_cache_home / "baselines").glob("*.json"))
    assert len(entries) == 1
    stored = json.loads(entries[0].read_text())
    assert [r["name"] for r in stored] == ["bird", "bridge", "comic"]

    # A warm cache: the bicubic baseline is neither upscaled nor scored again...
    calls = []
    real = scoring.bicubic_upscale
    monkeypatch.setattr(scoring, "bicubic_upscale", lambda *a: calls.append(a) or real(*a))
    (warm,) = evaluate_tflite(dynamic_model, str(eval_folder), quiet=True)
    assert calls == []
    # ...and every figure is the one computed without a cache (JSON round-trips floats).
    assert _rows(uncached) == _rows(first) == _rows(warm)

    # Other metric options or other data files are other entries.
    evaluate_tflite(dynamic_model, str(eval_folder), quiet=True, crop=0)
    evaluate_tflite(dynamic_model, str(eval_folder), quiet=True, y_channel=True)
    assert len(calls) == 6
    assert len(list((private_cache_home / "baselines").glob("*.json"))) == 3


def test_changed_data_files_recompute_the_baseline(dynamic_model, shared_data, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    link_images(folder, shared_data, ("Set5/bird.png",))
    cache_dir = tmp_path / "cache"
    (before,) = evaluate_tflite(dynamic_model, str(folder), quiet=True, cache_dir=cache_dir)
    (folder / "bird.png").unlink()
    (folder / "bird.png").symlink_to(shared_data / "Set5" / "butterfly.png")
    (after,) = evaluate_tflite(dynamic_model, str(folder), quiet=True, cache_dir=cache_dir)
    assert after.images[0].bicubic_psnr != before.images[0].bicubic_psnr
    (reference,) = evaluate_tflite(dynamic_model, str(folder), quiet=True, use_cache=False)
    assert _rows(after) == _rows(reference)


def test_a_folder_name_under_mai_sr_data_is_fingerprinted_by_its_images(eval_folder, tmp_path,
                                                                         monkeypatch):
    """`--data Set14` (a name under $MAI_SR_DATA) keys the baseline cache by that folder's
    images, as its full path does, so changing an image there changes the key."""
    import os
    import shutil

    from mai_sr.cache import dataset_fingerprint, sha256_json

    shared = tmp_path / "shared"
    shutil.copytree(eval_folder, shared / "Mine")
    monkeypatch.setenv("MAI_SR_DATA", str(shared))
    monkeypatch.chdir(tmp_path)
    by_name = dataset_fingerprint("Mine")
    assert by_name == dataset_fingerprint(str(shared / "Mine")) != sha256_json([])
    image = shared / "Mine" / "bird.png"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    assert dataset_fingerprint("Mine") != by_name


def test_unwritable_cache_location_means_no_cache(dynamic_model, eval_folder, tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    (result,) = evaluate_tflite(dynamic_model, str(eval_folder), quiet=True,
                                cache_dir=blocker / "cache")
    assert len(result.images) == 3 and blocker.read_text().startswith("a file")
    # A damaged entry is recomputed, not an error.
    cache_dir = tmp_path / "cache"
    evaluate_tflite(dynamic_model, str(eval_folder), quiet=True, cache_dir=cache_dir)
    (entry,) = (cache_dir / "baselines").glob("*.json")
    entry.write_text('[{"name": "bird"')
    (again,) = evaluate_tflite(dynamic_model, str(eval_folder), quiet=True, cache_dir=cache_dir)
    assert _rows(again) == _rows(result)
    rc = main(["eval", str(dynamic_model), "--data", str(eval_folder), "--quiet", "--json",
               "--cache-dir", str(blocker / "cache")])
    assert rc == 0 and json.loads(capsys.readouterr().out)[0]["dataset"] == eval_folder.name


def test_pipelined_eval_equals_sequential(dynamic_model, eval_folder, tmp_path):
    (one,) = evaluate_tflite(dynamic_model, str(eval_folder), quiet=True, use_cache=False,
                             jobs=1, save_dir=tmp_path / "one")
    (two,) = evaluate_tflite(dynamic_model, str(eval_folder), quiet=True, use_cache=False,
                             jobs=2, save_dir=tmp_path / "two")
    assert _rows(one) == _rows(two)
    # The saved images are the model's pixels, whatever the PNG compression.
    for name in ("bird", "bridge", "comic"):
        a, b = (np.asarray(Image.open(tmp_path / d / eval_folder.name / f"{name}.png"))
                for d in ("one", "two"))
        assert np.array_equal(a, b)


def test_worker_failure_is_one_line_and_interrupt_stops_the_pool(dynamic_model, eval_folder,
                                                                 tmp_path, capsys, monkeypatch):
    import threading

    from mai_sr import evaluate

    # A failure on a scoring thread (the save folder is a file): one line, exit 2.
    blocker = tmp_path / "save"
    blocker.write_text("not a folder")
    _one_line_error(capsys, ["eval", str(dynamic_model), "--data", str(eval_folder), "--quiet",
                             "--save-dir", str(blocker)], "cannot write")
    # A failure on the decoding thread (an unreadable image): one line naming it, exit 2.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bird.png").symlink_to(eval_folder / "bird.png")
    (broken / "zz_truncated.png").write_bytes((eval_folder / "bird.png").read_bytes()[:500])
    _one_line_error(capsys, ["eval", str(dynamic_model), "--data", str(broken), "--quiet"],
                    "zz_truncated.png")

    # Ctrl-C during inference of the second image: it propagates, no worker thread is left
    # running, and the save folder holds only whole images (no temporary files).
    real_upscale = evaluate.TFLiteSR.upscale
    seen = []

    def interrupted(self, lr, *args, **kwargs):
        seen.append(lr.shape)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return real_upscale(self, lr, *args, **kwargs)

    monkeypatch.setattr(evaluate.TFLiteSR, "upscale", interrupted)
    save = tmp_path / "saved"
    with pytest.raises(KeyboardInterrupt):
        evaluate_tflite(dynamic_model, str(eval_folder), quiet=True, save_dir=save)
    assert not [t for t in threading.enumerate() if t.name.startswith("mai-sr-work")]
    files = sorted(p.name for p in save.rglob("*") if p.is_file())
    assert files == ["bird.png"]
    assert np.asarray(Image.open(next(save.rglob("bird.png")))).shape[2] == 3


def _eval_output(shared_data: Path, env: dict) -> str:
    """stdout + stderr of `mai-sr eval --pretrained abpn --data Set5` in a fresh process."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "mai_sr", "eval", "--pretrained", "abpn", "--data",
           str(shared_data / "Set5")]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=root, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(root), **env})
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


@pytest.mark.slow
def test_eval_prints_no_litert_or_tensorflow_line(shared_data):
    # LiteRT writes "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." to fd 2 from
    # C++; only the command's own table and progress bar may appear.
    out = _eval_output(shared_data, {"MAI_SR_TF_LOGS": "0"})
    assert "Set5" in out and "PSNR" in out
    assert not [line for line in out.splitlines()
                if "INFO:" in line or "XNNPACK" in line or "TensorFlow" in line], out
    # The line is real and MAI_SR_TF_LOGS=1 shows it (so the check above can fail).
    assert "XNNPACK delegate" in _eval_output(shared_data, {"MAI_SR_TF_LOGS": "1"})


def test_eval_takes_folder_names_under_mai_sr_data(shared_data, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)  # "Set5" is not a folder here: only $MAI_SR_DATA has it
    monkeypatch.setenv("MAI_SR_DATA", str(shared_data))
    assert main(["eval", "--pretrained", "abpn", "--data", "Set5", "--json", "--quiet"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["dataset"] == "Set5" and len(result["images"]) == 5
    monkeypatch.delenv("MAI_SR_DATA")
    assert main(["eval", "--pretrained", "abpn", "--data", "Set5", "--quiet"]) == 2
    assert "$MAI_SR_DATA is not set" in capsys.readouterr().err


def _cached_set(cache_dir, kind: str) -> dict:
    import numpy as np

    (entry,) = (cache_dir / kind).glob("*.npz")
    with np.load(entry, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def test_cached_lr_and_hr_images_are_what_eval_makes_and_change_no_score(dynamic_model,
                                                                         eval_folder, tmp_path,
                                                                         monkeypatch):
    import numpy as np

    from mai_sr import data
    from mai_sr.data import bicubic_downscale, crop_to_scale, image_files
    from mai_sr.imageio import read_image_rgb

    cache_dir = tmp_path / "cache"
    (cold,) = evaluate_tflite(dynamic_model, str(eval_folder), quiet=True, cache_dir=cache_dir)
    lr, hr = _cached_set(cache_dir, "lr"), _cached_set(cache_dir, "hr")
    files = image_files(eval_folder)
    assert sorted(lr) == sorted(hr) == sorted(f.stem for f in files)
    for f in files:  # exactly what eval would make again
        decoded = crop_to_scale(read_image_rgb(f), 3)
        assert np.array_equal(hr[f.stem], decoded)
        assert np.array_equal(lr[f.stem], bicubic_downscale(decoded, 3))
    written = {kind: next((cache_dir / kind).glob("*.npz")).stat().st_mtime_ns
               for kind in ("lr", "hr")}
    decoded_files = []  # a warm run decodes no image
    monkeypatch.setattr(data, "read_image_rgb",
                        lambda path: decoded_files.append(path) or read_image_rgb(path))
    (warm,) = evaluate_tflite(dynamic_model, str(eval_folder), quiet=True, cache_dir=cache_dir)
    assert decoded_files == []
    (reference,) = evaluate_tflite(dynamic_model, str(eval_folder), quiet=True, use_cache=False)
    assert _rows(warm) == _rows(cold) == _rows(reference)
    for kind in ("lr", "hr"):  # a complete entry is not rewritten
        assert next((cache_dir / kind).glob("*.npz")).stat().st_mtime_ns == written[kind]


@pytest.mark.parametrize("kind", ["lr", "hr"])
def test_a_damaged_or_foreign_image_cache_entry_is_made_again(kind, dynamic_model,
                                                              eval_folder, tmp_path):
    import numpy as np

    cache_dir = tmp_path / "cache"
    (reference,) = evaluate_tflite(dynamic_model, str(eval_folder), quiet=True, use_cache=False)
    evaluate_tflite(dynamic_model, str(eval_folder), quiet=True, cache_dir=cache_dir)
    (entry,) = (cache_dir / kind).glob("*.npz")
    good = _cached_set(cache_dir, kind)
    names = sorted(good)
    damaged = [
        entry.read_bytes()[:1000],  # torn
        b"not a zip at all",
        None,  # an object array: a pickle, which is never loaded
        None,  # images of the wrong size under the right names
    ]
    for i, content in enumerate(damaged):
        if i == 2:
            with open(entry, "wb") as f:
                np.savez(f, **{names[0]: np.array([{"x": 1}], dtype=object)})
        elif i == 3:
            with open(entry, "wb") as f:
                np.savez(f, **{n: np.zeros((4, 4, 3), np.uint8) for n in names})
        else:
            entry.write_bytes(content)
        (again,) = evaluate_tflite(dynamic_model, str(eval_folder), quiet=True,
                                   cache_dir=cache_dir)
        assert _rows(again) == _rows(reference), i
    # the wrong-size images were replaced by the ones made again
    kept = _cached_set(cache_dir, kind)
    assert all(np.array_equal(kept[n], good[n]) for n in names)
