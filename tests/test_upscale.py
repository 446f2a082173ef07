"""mai_sr.tflite.runtime tiling and `mai-sr upscale`: exact tiles, image modes, EXIF, errors, no TF."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mai_sr.cli import main
from mai_sr.errors import MaiSrError
from mai_sr.tflite.runtime import TFLiteSR, tile_spans
from mai_sr.upscale import upscale_paths
from test_eval import FIXED_SHAPE, built_model
from tflite_factory import prebuilt, reference_sr

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def dynamic_model(tmp_path_factory) -> TFLiteSR:
    return TFLiteSR(built_model(tmp_path_factory, "dynamic"))


@pytest.fixture(scope="session")
def lr_image(shared_data) -> np.ndarray:
    """A real 47x61 (HxW, both odd) LR crop of Set5's bird."""
    img = Image.open(shared_data / "Set5" / "bird.png").convert("RGB")
    return np.asarray(img.resize((96, 96), Image.BICUBIC, reducing_gap=None))[20:67, 11:72]


def test_tile_spans_partition_the_axis():
    for length in (1, 7, 16, 47, 61, 100):
        for tile in (5, 9, 16, 64):
            for margin in (0, 1, 2):
                if tile >= length or tile > 2 * margin:
                    spans = tile_spans(length, tile, margin)
                    kept = [i for s in spans for i in range(s.keep_start, s.keep_stop)]
                    assert kept == list(range(length))
                    for s in spans:
                        assert s.stop - s.start == min(tile, length)
                        assert 0 <= s.start and s.stop <= length
                        assert s.keep_start - s.start >= (margin if s.start > 0 else 0)
                        assert s.stop - s.keep_stop >= (margin if s.stop < length else 0)
    with pytest.raises(MaiSrError, match="receptive field"):
        tile_spans(100, 4, 2)


def test_model_reads_scale_shape_and_receptive_field(dynamic_model, tmp_path_factory):
    assert dynamic_model.scale == 3 and dynamic_model.fixed_shape is None
    # factory graph: conv3x3 -> conv3x3, plus a 1x1 anchor: radius 1 + 1 + 0
    assert dynamic_model.receptive_field == 2
    fixed = TFLiteSR(built_model(tmp_path_factory, "fixed"))
    assert fixed.fixed_shape == FIXED_SHAPE and fixed.scale == 3


@pytest.mark.parametrize("kind", ["dynamic", "int8_io"])
def test_output_close_to_float_network(kind, lr_image, tmp_path_factory):
    # Checks the uint8/int8 quantization at the edges: a wrong zero point is off by 128.
    sr = TFLiteSR(built_model(tmp_path_factory, kind)).upscale(lr_image)
    reference = np.clip(np.round(reference_sr(lr_image)), 0, 255)
    assert sr.shape == (141, 183, 3) and sr.dtype == np.uint8
    assert np.abs(sr - reference).mean() < 1.0 and np.abs(sr - reference).max() <= 4


@pytest.mark.parametrize("tile", [16, 5, (9, 30)])
def test_tiled_equals_whole_image_bit_exact(dynamic_model, lr_image, tile):
    whole = dynamic_model.run(lr_image)
    tiled = dynamic_model.upscale(lr_image, tile=tile)
    assert len(dynamic_model.tiles(47, 61, tile)) > 1
    np.testing.assert_array_equal(tiled, whole)


@pytest.mark.parametrize("tile", [None, 16])
def test_prepare_allocates_for_the_first_tile_and_changes_nothing(dynamic_model, lr_image,
                                                                   tile):
    """``prepare`` (called while the first image decodes) allocates at the size of the
    image's first tile, so that image's invokes need no new allocation; pixels unchanged."""
    reference = dynamic_model.upscale(lr_image, tile=tile)
    dynamic_model.run(lr_image[:8, :8])  # another size allocated
    dynamic_model.prepare(*lr_image.shape[:2], tile)
    rows, cols = dynamic_model.tiles(*lr_image.shape[:2], tile)[0]
    assert dynamic_model._size == (rows.stop - rows.start, cols.stop - cols.start)
    np.testing.assert_array_equal(dynamic_model.upscale(lr_image, tile=tile), reference)


def test_fixed_shape_tiling_equals_dynamic(dynamic_model, lr_image, tmp_path_factory):
    fixed = TFLiteSR(built_model(tmp_path_factory, "fixed"))
    # Image larger than the 24x32 input: shifted last tiles, exact everywhere.
    np.testing.assert_array_equal(fixed.upscale(lr_image), dynamic_model.run(lr_image))
    # Image smaller than the input (20x20): padded, exact except within the receptive
    # field (2 LR = 6 HR pixels) of the padded bottom/right border.
    small = lr_image[:20, :20]
    sr, whole = fixed.upscale(small), dynamic_model.run(small)
    assert sr.shape == whole.shape == (60, 60, 3)
    np.testing.assert_array_equal(sr[:54, :54], whole[:54, :54])


def test_tile_option_rejected_for_fixed_shape_model(tmp_path_factory, lr_image):
    fixed = TFLiteSR(built_model(tmp_path_factory, "fixed"))
    with pytest.raises(MaiSrError, match="fixed 24x32"):
        fixed.upscale(lr_image, tile=16)


def _save(path: Path, array: np.ndarray, **kw) -> Path:
    Image.fromarray(array).save(path, **kw)
    return path


def test_exif_orientation_is_applied(dynamic_model, lr_image, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    src = _save(tmp_path / "rotated.png", lr_image, exif=exif)
    (out,) = upscale_paths(src, tmp_path / "out.png", model=dynamic_model.path, quiet=True)
    upright = np.ascontiguousarray(np.rot90(lr_image, k=-1))  # 61x47 when displayed
    result = Image.open(out)
    assert result.size == (47 * 3, 61 * 3)
    np.testing.assert_array_equal(np.asarray(result), dynamic_model.run(upright))


def test_greyscale_stays_greyscale(dynamic_model, lr_image, tmp_path):
    grey = lr_image[..., 1]
    src = _save(tmp_path / "grey.png", grey)
    (out,) = upscale_paths(src, tmp_path / "grey_x3.png", model=dynamic_model.path, quiet=True)
    result = Image.open(out)
    assert result.mode == "L" and result.size == (61 * 3, 47 * 3)
    sr = dynamic_model.run(np.repeat(grey[..., None], 3, axis=2)).astype(np.float64)
    luma = sr @ np.array([0.299, 0.587, 0.114])  # ITU-R 601-2, Pillow's "L"
    assert np.abs(np.asarray(result) - luma).max() <= 1.0


def test_alpha_is_bicubic_and_colour_goes_through_model(dynamic_model, lr_image, tmp_path):
    alpha = np.tile(np.linspace(0, 255, 61).astype(np.uint8), (47, 1))
    src = _save(tmp_path / "rgba.png", np.dstack([lr_image, alpha]))
    (out,) = upscale_paths(src, tmp_path / "rgba_x3.png", model=dynamic_model.path, quiet=True)
    result = np.asarray(Image.open(out))
    assert Image.open(out).mode == "RGBA"
    np.testing.assert_array_equal(result[..., :3], dynamic_model.run(lr_image))
    bicubic = Image.fromarray(alpha).resize((61 * 3, 47 * 3), Image.BICUBIC)
    np.testing.assert_array_equal(result[..., 3], np.asarray(bicubic))


def test_folder_to_folder_with_cli(dynamic_model, lr_image, tmp_path, capsys):
    src = tmp_path / "in"
    (src / "nested").mkdir(parents=True)
    _save(src / "a.png", lr_image)
    _save(src / "nested" / "b.png", lr_image[:30, :40])
    (src / "readme.txt").write_text("not an image")
    rc = main(["upscale", str(src), str(tmp_path / "out"), "--model", str(dynamic_model.path),
               "--tile", "16", "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "out" / "a.png"), str(tmp_path / "out" / "nested" / "b.png")]
    b = np.asarray(Image.open(tmp_path / "out" / "nested" / "b.png"))
    np.testing.assert_array_equal(b, dynamic_model.run(np.ascontiguousarray(lr_image[:30, :40])))


def test_upscale_bad_inputs(dynamic_model, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    not_tflite = tmp_path / "model.tflite"
    not_tflite.write_text("hello")
    for argv, fragment in [
        (["upscale", str(tmp_path / "empty"), str(tmp_path / "o"), "--model",
          str(dynamic_model.path)], "no images"),
        (["upscale", str(tmp_path / "missing.png"), str(tmp_path / "o.png"), "--model",
          str(dynamic_model.path)], "missing.png"),
        (["upscale", str(tmp_path / "x.png"), str(tmp_path / "o.png"), "--model",
          str(not_tflite)], "TFLite model"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("mai-sr upscale: error: ")
        assert fragment in err
    assert not (tmp_path / "o").exists()


def test_not_an_image_model(tmp_path):
    path = prebuilt("classifier", tmp_path / "classifier.tflite")  # float 1x8 -> sum, 1x1
    with pytest.raises(MaiSrError, match="not an image model") as info:
        TFLiteSR(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_eval_and_upscale_do_not_import_tensorflow(tmp_path_factory, lr_image, shared_data,
                                                  tmp_path):
    model = built_model(tmp_path_factory, "dynamic")
    src = _save(tmp_path / "in.png", lr_image)
    code = f"""
import sys
from mai_sr.cli import main
assert main(["eval", {str(model)!r}, "--data", {str(shared_data / 'Set5')!r}, "--quiet"]) == 0
assert main(["upscale", {str(src)!r}, {str(tmp_path / 'out.png')!r}, "--model", {str(model)!r},
             "--quiet"]) == 0
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras"))
print("HEAVY", heavy)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout
    assert (tmp_path / "out.png").exists()


@pytest.mark.tf
@pytest.mark.slow
def test_receptive_field_follows_the_longest_path(tmp_path):
    """SCSRN's training graph (un-collapsed rep blocks: 3x3, 1x1 and identity branches added)
    has the radius of its collapsed deploy graph, not the sum over branches. Checked against
    the radius seen in the file itself: perturb one LR pixel, see how far the output moves."""
    from ai_edge_litert.interpreter import Interpreter

    from mai_sr._tf import tf
    from mai_sr.models import create_model
    from mai_sr.tflite.graph import read_graph
    from mai_sr.tflite.runtime import receptive_field_radius

    def tflite_file(model, name):
        path = tmp_path / name
        path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
        return path

    train = tflite_file(create_model("scsrn", input_size=(24, 24)), "train.tflite")
    deploy = tflite_file(create_model("scsrn", input_size=(24, 24), deploy=True), "deploy.tflite")
    graph = read_graph(train)
    branches = sum(op.kernel is not None for op in graph.ops)
    radius = receptive_field_radius(graph)
    assert radius == receptive_field_radius(read_graph(deploy))
    assert branches > radius  # the old sum over every conv over-counted

    interpreter = Interpreter(model_path=str(train))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    rng = np.random.default_rng(0)
    lr = rng.uniform(0, 255, (1, 24, 24, 3)).astype(np.float32)

    def run(x):
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])[0].copy()

    poked = lr.copy()
    poked[0, 12, 12] += 50.0
    changed = np.abs(run(poked) - run(lr)).max(axis=2) > 1e-4
    rows, cols = np.nonzero(changed)
    seen = max(np.abs(rows // 3 - 12).max(), np.abs(cols // 3 - 12).max())
    assert seen == radius


# ---------------------------------------------------------------- pipeline and encoding


@pytest.fixture
def mixed_folder(lr_image, tmp_path) -> Path:
    """RGB, greyscale, RGBA and a JPEG input, in a folder and a subfolder."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    _save(src / "a_rgb.png", lr_image)
    _save(src / "b_grey.png", np.asarray(Image.fromarray(lr_image).convert("L")))
    rgba = np.concatenate([lr_image, lr_image[..., :1]], axis=2)
    _save(src / "sub" / "c_rgba.png", rgba)
    _save(src / "d_photo.jpg", lr_image[:40, :50], quality=90)
    return src


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def test_pipelined_folder_equals_one_by_one(dynamic_model, mixed_folder, tmp_path):
    from mai_sr.imageio import read_image
    from mai_sr.upscale import upscale_image

    one = upscale_paths(mixed_folder, tmp_path / "one", model=dynamic_model.path, quiet=True,
                        jobs=1)
    two = upscale_paths(mixed_folder, tmp_path / "two", model=dynamic_model.path, quiet=True,
                        jobs=2)
    assert [p.relative_to(tmp_path / "one") for p in one] == \
        [p.relative_to(tmp_path / "two") for p in two]
    for a, b in zip(one, two):
        assert a.read_bytes() == b.read_bytes()  # same pixels, same encoder: same file
        src = mixed_folder / a.relative_to(tmp_path / "one")
        if a.suffix == ".png":  # (the JPEG input is written as a lossy JPEG)
            # Each PNG holds what upscale_image gives for its input, decoded by Pillow.
            np.testing.assert_array_equal(_pixels(a),
                                          upscale_image(dynamic_model, read_image(src)))


def test_png_level_changes_size_not_pixels(dynamic_model, lr_image, tmp_path, capsys):
    src = _save(tmp_path / "in.png", lr_image)
    expected = dynamic_model.run(np.ascontiguousarray(lr_image))
    sizes = {}
    for level in (0, 1, 9):
        out = tmp_path / f"out{level}.png"
        assert main(["upscale", str(src), str(out), "--model", str(dynamic_model.path),
                     "--quiet", "--png-level", str(level)]) == 0
        np.testing.assert_array_equal(_pixels(out), expected)
        sizes[level] = out.stat().st_size
    assert sizes[0] > sizes[1] >= sizes[9]
    # The default is the fast level 1.
    default = tmp_path / "default.png"
    upscale_paths(src, default, model=dynamic_model.path, quiet=True)
    assert default.read_bytes() == (tmp_path / "out1.png").read_bytes()
    capsys.readouterr()
    assert main(["upscale", str(src), str(tmp_path / "x.png"), "--model",
                 str(dynamic_model.path), "--png-level", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--png-level" in err


def test_format_and_quality_for_a_folder(dynamic_model, mixed_folder, tmp_path, capsys):
    written = upscale_paths(mixed_folder, tmp_path / "webp", model=dynamic_model.path,
                            quiet=True, fmt="webp")
    assert sorted(p.relative_to(tmp_path / "webp").as_posix() for p in written) == \
        ["a_rgb.webp", "b_grey.webp", "d_photo.webp", "sub/c_rgba.webp"]
    for p in written:
        with Image.open(p) as im:
            assert im.format == "WEBP"
    # JPEG has no alpha channel: an RGBA input is a one-line error naming the file.
    assert main(["upscale", str(mixed_folder), str(tmp_path / "alpha"), "--model",
                 str(dynamic_model.path), "--quiet", "--format", "jpg"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "c_rgba.jpg" in err and "RGBA" in err
    (mixed_folder / "sub" / "c_rgba.png").unlink()
    sizes = {}
    for quality in (40, 95):
        assert main(["upscale", str(mixed_folder), str(tmp_path / f"q{quality}"), "--model",
                     str(dynamic_model.path), "--quiet", "--format", "jpg", "--quality",
                     str(quality)]) == 0
        sizes[quality] = (tmp_path / f"q{quality}" / "a_rgb.jpg").stat().st_size
    assert sizes[40] < sizes[95]
    capsys.readouterr()
    # Two inputs that one format would write to the same file: refused before any write.
    _save(mixed_folder / "d_photo.png", np.asarray(Image.open(mixed_folder / "a_rgb.png")))
    assert main(["upscale", str(mixed_folder), str(tmp_path / "clash"), "--model",
                 str(dynamic_model.path), "--quiet", "--format", "png"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "d_photo.png" in err
    assert not (tmp_path / "clash").exists()


def test_failing_write_and_interrupt_stop_the_pool(dynamic_model, mixed_folder, tmp_path,
                                                   capsys, monkeypatch):
    import threading

    from mai_sr import upscale

    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    assert main(["upscale", str(mixed_folder), str(blocker / "out"), "--model",
                 str(dynamic_model.path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mai-sr upscale: error: ")

    real = upscale.upscale_image
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(upscale, "upscale_image", interrupted)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        upscale_paths(mixed_folder, out, model=dynamic_model.path, quiet=True)
    assert not [t for t in threading.enumerate() if t.name.startswith("mai-sr-work")]
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["a_rgb.png", "b_grey.png"]  # whole files only, no temporaries
    assert _pixels(out / "b_grey.png").ndim == 2
