"""`mai-sr import`: published weights into mai-sr deploy graphs, checked against the
published files themselves (../shared/artifacts) and the ETDS paper's figures."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mai_sr.errors import MaiSrError

from conftest import SHARED_ARTIFACTS as ARTIFACTS

ROOT = Path(__file__).resolve().parents[1]
ETDS = ARTIFACTS / "etds_abpn" / "ABPN_M4C28_x3.pth"
NJU_SAVEDMODEL = ARTIFACTS / "nju_abpn" / "savedmodel"
NJU_QAT = ARTIFACTS / "nju_abpn" / "base7_D4C28_bs16ps64_lr1e-3_qat.tflite"
MEGSR = ARTIFACTS / "megsr_ncnet" / "model_none.tflite"

# "Equivalent Transformation and Dual Stream Network Construction for Mobile Image
# Super-Resolution" (Chao et al., CVPR 2023), Table 2: ABPN (M4C28) x3, Y PSNR on
# Set5 / Set14 / B100.
ETDS_PUBLISHED_Y = {"Set5": 33.53, "Set14": 29.78, "B100": 28.72}
# The same file measured through mai-sr's evaluation (Pillow bicubic LR, 3-px crop).
ETDS_MEASURED_Y = {"Set5": 33.54, "Set14": 29.80, "B100": 28.73}


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not present: put ../shared/artifacts beside the checkout or set "
                    "MAI_SR_ARTIFACTS")
    return path


# ------------------------------------------------------------------ torch reader (TF-free)


def test_torch_reader_needs_neither_torch_nor_tensorflow():
    need(ETDS)
    script = ("import sys; from mai_sr.importer.torch_source import read_torch; "
              f"net = read_torch({str(ETDS)!r}); "
              "print([c.kernel.shape for c in net.convs]); "
              "assert 'torch' not in sys.modules and 'tensorflow' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "(3, 3, 3, 28)" in proc.stdout and "(3, 3, 27, 27)" in proc.stdout


def test_torch_reader_matches_the_raw_storages():
    from mai_sr.importer.torch_checkpoint import read_state_dict

    sd, nesting = read_state_dict(need(ETDS))
    assert nesting is None
    assert list(sd)[0] == "backbone.0.weight" and list(sd)[-1] == "backbone.8.bias"
    # backbone.0.weight is storage "0", 28*3*3*3 contiguous float32 (independent read)
    with zipfile.ZipFile(ETDS) as archive:
        raw = np.frombuffer(archive.read("archive/data/0"), "<f4")
    np.testing.assert_array_equal(sd["backbone.0.weight"].ravel(), raw[:28 * 27])


def _wrapped(pickle_bytes: bytes, key: str) -> bytes:
    """The pickle {key: <original object>}: same memo, one dict around it."""
    assert pickle_bytes[:2] == b"\x80\x02" and pickle_bytes[-1:] == b"."
    name = key.encode()
    return (b"\x80\x02}X" + struct.pack("<I", len(name)) + name + pickle_bytes[2:-1] + b"s.")


def _rezip(src: Path, dst: Path, data_pkl: bytes) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            zout.writestr(item, data_pkl if item.endswith("data.pkl") else zin.read(item))
    return dst


@pytest.mark.parametrize("key", ["params_ema", "params", "state_dict"])
def test_torch_reader_unwraps_nested_state_dicts(tmp_path, key):
    from mai_sr.importer.torch_checkpoint import read_state_dict

    with zipfile.ZipFile(need(ETDS)) as archive:
        original = archive.read("archive/data.pkl")
    nested = _rezip(ETDS, tmp_path / "nested.pth", _wrapped(original, key))
    flat, _ = read_state_dict(ETDS)
    sd, nesting = read_state_dict(nested)
    assert nesting == key and list(sd) == list(flat)
    assert all(np.array_equal(sd[k], flat[k]) for k in flat)


def test_torch_reader_refuses_code_in_the_pickle(tmp_path):
    from mai_sr.importer.torch_checkpoint import read_state_dict

    marker = tmp_path / "pwned"
    command = f"touch {marker}".encode()
    evil = (b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(command)) + command +
            b"\x85R.")
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", evil)
    with pytest.raises(MaiSrError, match="refusing to load os.system"):
        read_state_dict(path)
    assert not marker.exists()


def test_torch_reader_rejects_a_non_zip(tmp_path):
    from mai_sr.importer.torch_checkpoint import read_state_dict

    path = tmp_path / "old.pth"
    path.write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(MaiSrError, match="not a zip checkpoint"):
        read_state_dict(path)


# ------------------------------------------------------------------ matcher (TF-free)


def test_crd_to_dcr_matches_pixel_shuffle_and_depth_to_space():
    """Independent reference: PixelShuffle and depth_to_space written as reshapes."""
    from mai_sr.importer.matcher import crd_to_dcr

    s, c, h, w = 3, 3, 2, 2
    x = np.random.default_rng(0).normal(size=(h, w, c * s * s))
    # PixelShuffle (CRD): out[h*s+i, w*s+j, c] = x[h, w, c*s^2 + i*s + j]
    shuffle = x.reshape(h, w, c, s, s).transpose(0, 3, 1, 4, 2).reshape(h * s, w * s, c)
    # depth_to_space (DCR): out[h*s+i, w*s+j, c] = x[h, w, (i*s + j)*C + c]
    d2s = lambda t: t.reshape(h, w, s, s, c).transpose(0, 2, 1, 3, 4).reshape(h * s, w * s, c)
    np.testing.assert_array_equal(d2s(x[..., crd_to_dcr(s)]), shuffle)


def test_convs_listed_out_of_forward_order_are_chained():
    """A state dict whose tail convs were registered before the body: the chain of channel
    counts restores graph order; same-shape convs keep their file order."""
    from mai_sr.importer.matcher import fit
    from mai_sr.importer.source import SourceConv, SourceNet

    rng = np.random.default_rng(0)
    shapes = [(3, 28), (28, 28), (28, 28), (28, 28), (28, 28), (28, 27), (27, 27)]
    convs = [SourceConv(rng.normal(size=(3, 3, i, o)).astype(np.float32),
                        np.zeros(o, np.float32), f"c{k}") for k, (i, o) in enumerate(shapes)]
    shuffled = [convs[5], convs[6], convs[0], convs[1], convs[2], convs[3], convs[4]]
    net = SourceNet(path="x", format="pytorch", layout="OIHW", channel_order="dcr",
                    convs=shuffled)
    fitted = fit(net, "abpn", [(3, 3, i, o) for i, o in shapes], channel_order="dcr",
                 input_range=255.0)
    for (kernel, _), conv in zip(fitted.weights, convs):
        np.testing.assert_array_equal(kernel, conv.kernel)
    assert "out of order" in fitted.conventions["layers"]


def test_an_x4_source_says_so():
    from mai_sr.importer.matcher import fit
    from mai_sr.importer.source import SourceConv, SourceNet

    shapes = [(3, 28), (28, 48), (48, 48)]
    convs = [SourceConv(np.zeros((3, 3, i, o), np.float32), None, "c") for i, o in shapes]
    net = SourceNet(path="x4.pth", format="pytorch", layout="OIHW", channel_order="crd",
                    convs=convs)
    with pytest.raises(MaiSrError, match="x4 model .* abpn here is x3"):
        fit(net, "abpn", [(3, 3, 3, 28), (3, 3, 28, 27), (3, 3, 27, 27)], channel_order="crd",
            input_range=1.0)


def test_learnt_anchor_is_refused():
    from mai_sr.importer.matcher import describe_anchor, nearest_anchor
    from mai_sr.importer.source import SourceNet

    kernel = nearest_anchor(3, "dcr") + np.random.default_rng(0).normal(0, 0.1, (1, 1, 3, 27))
    net = SourceNet(path="x", format="tflite", layout="OHWI", channel_order="dcr", convs=[],
                    anchor="nearest conv", anchor_kernel=kernel.astype(np.float32))
    with pytest.raises(MaiSrError, match="learnt"):
        describe_anchor(net, 3, "dcr")
    net.anchor_kernel = nearest_anchor(3, "crd")
    with pytest.raises(MaiSrError, match="--channel-order crd"):
        describe_anchor(net, 3, "dcr")


# ------------------------------------------------------------------ import (TF)


@pytest.fixture(scope="module")
def etds_weights(tmp_path_factory):
    from mai_sr.importer import import_weights

    out = tmp_path_factory.mktemp("etds") / "etds.weights.h5"
    result = import_weights(need(ETDS), "abpn", out)
    return out, result


def _keras_psnr(model, folder: Path, y_channel: bool) -> float:
    from mai_sr.data import iter_pairs
    from mai_sr.metrics import psnr

    values = []
    for pair in iter_pairs(folder, scale=3):
        sr = np.asarray(model(pair.lr[None].astype(np.float32), training=False))[0]
        values.append(psnr(np.clip(np.rint(sr), 0, 255).astype(np.uint8), pair.hr, crop=3,
                           y_channel=y_channel))
    return float(np.mean(values))


@pytest.mark.tf
def test_etds_import_names_every_convention(etds_weights):
    out, result = etds_weights
    conv = result.conventions
    assert conv["layout"].startswith("OIHW")
    assert "CRD -> depth-to-space DCR" in conv["channel order"]
    assert conv["input range"].startswith("[0, 1]")
    assert "built into" in conv["anchor"] and conv["scale"].startswith("x3")
    assert result.gate["psnr"] > result.gate["anchor_psnr"]
    record = json.loads(Path(f"{out}.json").read_text())
    assert record["conventions"] == conv and len(record["source_sha256"]) == 64


@pytest.mark.tf
@pytest.mark.slow
def test_etds_import_reaches_the_published_fp32_figures(etds_weights, shared_data):
    from mai_sr.models import create_model

    model = create_model("abpn", deploy=True)
    model.load_weights(str(etds_weights[0]))
    for name, expected in ETDS_MEASURED_Y.items():
        value = _keras_psnr(model, shared_data / name, y_channel=True)
        assert value == pytest.approx(expected, abs=0.02), name
        assert value >= ETDS_PUBLISHED_Y[name] - 0.02, name


@pytest.mark.tf
def test_channel_order_trap_fails_the_sanity_gate(tmp_path):
    from mai_sr.importer import import_weights

    out = tmp_path / "wrong.weights.h5"
    with pytest.raises(MaiSrError, match="sanity gate.*channel-order mismatch.*--channel-order crd it"):
        import_weights(need(ETDS), "abpn", out, channel_order="dcr")
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.tf
def test_a_source_of_another_shape_gives_one_line(tmp_path):
    from mai_sr.importer import import_weights

    with pytest.raises(MaiSrError) as info:
        import_weights(need(ETDS), "ncnet", tmp_path / "x.weights.h5")
    assert "conv 1 is 3->28, ncnet needs 3->32" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.tf
@pytest.mark.slow
def test_structure_not_names(tmp_path, etds_weights):
    """A Keras file of the published ABPN whose layer names sort against graph order
    imports to the same weights (legacy .h5 and v3 .keras)."""
    from mai_sr.importer import import_weights
    from mai_sr._tf import keras
    from mai_sr.models import create_model

    deploy = create_model("abpn", deploy=True)
    deploy.load_weights(str(etds_weights[0]))
    published = create_model("abpn", normalize=False)  # concat anchor, clip after d2s
    names = iter(["z_first", "y", "x", "w", "v", "u", "a_last"])
    renamed = keras.models.clone_model(
        published, clone_function=lambda layer: layer.__class__.from_config(
            {**layer.get_config(), "name": next(names)})
        if isinstance(layer, keras.layers.Conv2D) else layer.__class__.from_config(layer.get_config()))
    convs = [l for l in renamed.layers if isinstance(l, keras.layers.Conv2D)]
    for layer, source in zip(convs, [l for l in deploy.layers if type(l) is keras.layers.Conv2D]):
        layer.set_weights(source.get_weights())
    for suffix in (".h5", ".keras"):
        path = tmp_path / f"renamed{suffix}"
        renamed.save(str(path))
        result = import_weights(path, "abpn", tmp_path / f"again{suffix}.weights.h5")
        assert "concat" in result.conventions["anchor"] or "built into" in result.conventions["anchor"]
        again = create_model("abpn", deploy=True)
        again.load_weights(str(tmp_path / f"again{suffix}.weights.h5"))
        for a, b in zip(again.weights, deploy.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.tf
@pytest.mark.slow
def test_nju_savedmodel_import_equals_the_savedmodel(tmp_path, shared_data):
    from mai_sr._tf import tf
    from mai_sr.data import iter_pairs
    from mai_sr.importer import import_weights
    from mai_sr.models import create_model

    out = tmp_path / "nju.weights.h5"
    result = import_weights(need(NJU_SAVEDMODEL), "abpn", out)
    assert result.format == "savedmodel" and result.conventions["input range"].startswith("[0, 255]")
    model = create_model("abpn", deploy=True)
    model.load_weights(str(out))
    serving = tf.saved_model.load(str(NJU_SAVEDMODEL)).signatures["serving_default"]
    for pair in list(iter_pairs(shared_data / "Set5", scale=3))[:3]:
        lr = tf.constant(pair.lr[None].astype(np.float32))
        theirs = next(iter(serving(input_1=lr).values())).numpy()
        ours = model(lr, training=False).numpy()
        assert np.abs(ours - theirs).max() <= 1e-3, pair.name


@pytest.mark.tf
def test_megsr_tflite_import_reproduces_the_int8_file(tmp_path, shared_data):
    """The dequantized weights in mai-sr's FP32 NCNet give what MegSR's INT8 file gives, to
    within its quantization error."""
    from mai_sr.data import iter_pairs
    from mai_sr.importer import import_weights
    from mai_sr.metrics import psnr
    from mai_sr.models import create_model
    from mai_sr.tflite.runtime import TFLiteSR

    out = tmp_path / "megsr.weights.h5"
    result = import_weights(need(MEGSR), "ncnet", out)
    assert "equal to nearest-neighbour" in result.conventions["anchor"]
    model = create_model("ncnet", deploy=True)
    model.load_weights(str(out))
    runtime = TFLiteSR(MEGSR, 2)
    for pair in list(iter_pairs(shared_data / "Set5", scale=3))[:2]:
        ours = np.clip(np.rint(model(pair.lr[None].astype(np.float32)).numpy()[0]), 0, 255)
        theirs = runtime.upscale(pair.lr)
        assert np.abs(ours - theirs.astype(np.float64)).mean() < 1.5, pair.name
        assert abs(psnr(ours.astype(np.uint8), pair.hr) - psnr(theirs, pair.hr)) < 0.3


@pytest.mark.tf
def test_nju_int8_tflite_with_concat_anchor_imports(tmp_path):
    from mai_sr.importer import import_weights

    result = import_weights(need(NJU_QAT), "abpn", None)
    assert result.conventions["anchor"].startswith("concat of 9 input copies")
    assert result.format == "tflite"


@pytest.mark.tf
@pytest.mark.slow
def test_cli_import_prints_conventions_and_fails_in_one_line(tmp_path, capsys):
    from mai_sr.cli import main

    out = tmp_path / "cli.weights.h5"
    assert main(["import", str(need(ETDS)), "--model", "abpn", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "PixelShuffle CRD" in text and "sanity gate" in text and out.is_file()
    assert main(["import", str(ETDS), "--model", "abpn", "--channel-order", "dcr",
                 "--out", str(tmp_path / "bad.weights.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mai-sr import: error: sanity gate") and "\n" not in err


# ------------------------------------------------------------------ QAT from a weights file


@pytest.mark.tf
@pytest.mark.slow
def test_qat_starts_from_an_imported_weights_file(tmp_path, etds_weights):
    """``train --qat --from W.weights.h5``: no FP32 stage, the QAT model starts from exactly
    the imported weights, and ``export --run`` takes the run."""
    from mai_sr.cli import main
    from mai_sr.models import create_model
    from mai_sr.runs import FP32_DEPLOY_WEIGHTS, QAT_WEIGHTS, read_run_config

    run = tmp_path / "run"
    assert main(["train", "--qat", "--from", str(etds_weights[0]), "--qat-steps", "2",
                 "--patch", "16", "--batch", "2", "--out", str(run), "--quiet"]) == 0
    config = read_run_config(run)
    assert config["model"] == "abpn" and config["weight_clip"] is False
    assert (run / QAT_WEIGHTS).is_file() and not (run / "fp32" / "train.weights.h5").exists()
    start, imported = create_model("abpn", deploy=True), create_model("abpn", deploy=True)
    start.load_weights(str(run / FP32_DEPLOY_WEIGHTS))
    imported.load_weights(str(etds_weights[0]))
    for a, b in zip(start.weights, imported.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.tf
@pytest.mark.slow
def test_a_weights_file_teaches_its_own_qat(tmp_path, etds_weights):
    """``--teacher W.weights.h5``: QAT from imported weights distils from their own float
    model (what the run records and loads is exactly that model); a teacher file of another
    architecture or scale is refused before the run exists."""
    from mai_sr.cli import main
    from mai_sr.models import create_model
    from mai_sr.runs import read_run_config
    from mai_sr.train import TrainConfig, load_teacher

    weights = str(etds_weights[0])
    run = tmp_path / "run"
    assert main(["train", "--qat", "--from", weights, "--teacher", weights,
                 "--distill-weight", "1", "--qat-steps", "2", "--patch", "16", "--batch", "2",
                 "--out", str(run), "--quiet"]) == 0
    config = read_run_config(run)
    assert config["teacher"] == str(Path(weights).resolve()) and config["distill_weight"] == 1
    teacher = load_teacher(config["teacher"], "abpn", 3)
    imported = create_model("abpn", deploy=True)
    imported.load_weights(weights)
    lr = np.random.default_rng(0).uniform(0, 255, (1, 24, 24, 3)).astype(np.float32)
    np.testing.assert_array_equal(teacher(lr).numpy(), imported(lr).numpy())
    # a teacher of another architecture is fine (its record says what to build); of
    # another scale it is not
    TrainConfig(teacher=weights, model="ncnet", out=str(tmp_path / "student"))
    with pytest.raises(MaiSrError, match="holds x3 weights"):
        TrainConfig(teacher=weights, model="abpn", scale=2, out=str(tmp_path / "refused"))
    assert not (tmp_path / "refused").exists()


@pytest.mark.tf
def test_qat_from_a_weights_file_of_another_model_fails_in_one_line(tmp_path, etds_weights,
                                                                     capsys):
    from mai_sr.cli import main

    assert main(["train", "--qat", "--from", str(etds_weights[0]), "--model", "ncnet",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds abpn weights" in err and "\n" not in err


@pytest.mark.parametrize("model_name,checkpoint", [
    ("abpn", None), ("ecbsr", "ECBSR/ECBSR_M4C16_x3.pth"), ("etds", "ETDS/ETDS_M5C16_x3.pth"),
    ("fsrcnn", "FSRCNN/FSRCNN_x3.pth"), ("espcn", "ESPCN/ESPCN_x3.pth")])
@pytest.mark.tf
def test_init_training_graph_from_imported_weights(etds_weights, shared_data, tmp_path,
                                                   model_name, checkpoint):
    """``train --init W.weights.h5``: the [0, 1]-domain training graph (ECBSR's edge-oriented
    blocks, ETDS's two streams), set from the deploy weights, computes what the deploy graph
    computes on a real image."""
    from conftest import SHARED_ARTIFACTS

    from mai_sr.data import iter_pairs
    from mai_sr.importer import import_weights
    from mai_sr.runs import init_training_graph
    from mai_sr.models import create_model

    weights = etds_weights[0]
    if checkpoint is not None:
        source = SHARED_ARTIFACTS / "etds_zoo" / "pretrained" / checkpoint
        if not source.is_file():
            pytest.skip(f"{source} not present")
        weights = tmp_path / f"{model_name}.weights.h5"
        import_weights(source, None, weights)
    train = create_model(model_name)
    init_training_graph(train, model_name, 3, weights)
    deploy = create_model(model_name, deploy=True)
    deploy.load_weights(str(weights))
    lr = next(iter(iter_pairs(shared_data / "Set5", scale=3))).lr[None].astype(np.float32)
    np.testing.assert_allclose(train(lr).numpy(), deploy(lr).numpy(), atol=2e-3)


def _bilinear_x2_abpn():
    """The published-form ABPN at x2 with weights that compute bilinear upscaling: ReLU
    convs pass the colours through, the linear conv adds (bilinear - nearest) to the anchor."""
    from mai_sr._tf import keras
    from mai_sr.models import create_model

    model = create_model("abpn", scale=2, normalize=False)  # concat anchor, as published
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    for layer in convs[:-1]:  # colour c in channel c (and in every 2x2 slot of the last one)
        kernel = np.zeros(layer.kernel.shape, np.float32)
        for out in range(kernel.shape[3]):
            if out % 3 < kernel.shape[2]:
                kernel[1, 1, out % 3, out] = 1
        layer.set_weights([kernel, np.zeros(kernel.shape[3], np.float32)])
    # Half-pixel bilinear: HR row 2i + d samples LR row i - 1/4 (d = 0) or i + 1/4 (d = 1).
    taps = {0: {0: 0.25, 1: 0.75}, 1: {1: 0.75, 2: 0.25}}
    kernel = np.zeros(convs[-1].kernel.shape, np.float32)
    for dy in (0, 1):
        for dx in (0, 1):
            for c in range(3):
                out = (dy * 2 + dx) * 3 + c  # depth-to-space (DCR) order
                for ty, wy in taps[dy].items():
                    for tx, wx in taps[dx].items():
                        kernel[ty, tx, c, out] += wy * wx
                kernel[1, 1, c, out] -= 1  # the anchor adds the nearest pixel back
    convs[-1].set_weights([kernel, np.zeros(kernel.shape[3], np.float32)])
    return model


@pytest.mark.tf
def test_an_x2_source_imports_at_x2(tmp_path, shared_data):
    """The scale comes from the source: an x2 Keras file imports into an x2 deploy graph
    that computes what the file computes (here bilinear upscaling, checked against TF's
    half-pixel bilinear resize inside the border), and export adopts x2 from the record."""
    from mai_sr._tf import tf
    from mai_sr.data import iter_pairs
    from mai_sr.export.convert import _load_source
    from mai_sr.importer import import_weights

    source = tmp_path / "bilinear_x2.h5"
    _bilinear_x2_abpn().save(str(source))
    out = tmp_path / "x2.weights.h5"
    result = import_weights(source, "abpn", out)
    assert result.scale == 2 and result.conventions["scale"].startswith("x2")
    assert result.gate["margin"] > 0
    deploy, name, scale, _ = _load_source(None, "abpn", str(out), None, "fp32")
    assert (name, scale) == ("abpn", 2)
    lr = next(iter(iter_pairs(shared_data / "Set5", scale=2))).lr[None].astype(np.float32)
    h, w = lr.shape[1:3]
    expected = tf.image.resize(lr, (2 * h, 2 * w), method="bilinear").numpy()
    np.testing.assert_allclose(deploy(lr).numpy()[:, 2:-2, 2:-2],
                               np.clip(expected, 0, 255)[:, 2:-2, 2:-2], atol=1e-3)
