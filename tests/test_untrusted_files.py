"""Model files from the internet are data: nothing in them runs, no tensor reads outside its
buffer, and no file inflates past a mobile SR model's size. Every hostile file gives exit 2
and one line from the command that reads it."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

import crafted_files as crafted
from mai_sr.errors import MaiSrError
from mai_sr.importer.source import MAX_SOURCE_BYTES

from conftest import SHARED_ARTIFACTS

ETDS = SHARED_ARTIFACTS / "etds_abpn" / "ABPN_M4C28_x3.pth"


def _cli(capsys, argv) -> str:
    """Run ``mai-sr ARGV``; assert exit 2 and one stderr line; return that line."""
    from mai_sr.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mai-sr {argv[0]}: error: ") and "\n" not in err, err
    assert "Traceback" not in err
    return err


# ------------------------------------------------------------------ PyTorch: bounds (TF-free)


@pytest.mark.slow
def test_a_valid_crafted_checkpoint_reads_back_exactly(tmp_path):
    """The factory itself is right: a well-formed file reads as the arrays it holds (and,
    where torch is installed, as torch itself reads it)."""
    from mai_sr.importer.torch_checkpoint import read_state_dict

    path = crafted.conv_checkpoint(tmp_path / "ok.pth")
    sd, _ = read_state_dict(path)
    expected = (np.arange(81, dtype=np.float32) / 81).reshape(3, 3, 3, 3)
    np.testing.assert_array_equal(sd["conv.weight"], expected)
    assert list(sd) == ["conv.weight", "conv.bias"]
    # a transposed view (stride 1, 3, 9, 27) reads the same storage in another order
    sd, _ = read_state_dict(crafted.conv_checkpoint(tmp_path / "t.pth", stride=(1, 3, 9, 27)))
    np.testing.assert_array_equal(sd["conv.weight"], expected.reshape(-1).reshape(
        3, 3, 3, 3, order="F"))
    torch = pytest.importorskip("torch", reason="torch not installed: cross-check skipped")
    ref = torch.load(path, weights_only=True)
    np.testing.assert_array_equal(ref["conv.weight"].numpy(), expected)


@pytest.mark.parametrize("field, value, complaint", [
    ("offset", 10**6, r"reach element 1000080 of storage archive/data/0, which holds 81"),
    ("size", (3, 3, 3, 4), r"reach element 81 of storage"),
    ("stride", (27, 9, 3, 100), r"reach element 278 of storage"),
    ("stride", (27, 9, 3, -1), r"malformed size"),
    ("offset", -5, r"malformed size"),
    ("size", (3, 3, 3), r"malformed size"),
    ("size", (2**20, 2**20, 3, 3), r"exceeds the import limit"),
])
def test_a_tensor_past_its_storage_is_refused_naming_it(tmp_path, field, value, complaint):
    from mai_sr.importer.torch_checkpoint import read_state_dict

    path = crafted.conv_checkpoint(tmp_path / "bad.pth", **{field: value})
    with pytest.raises(MaiSrError, match=complaint) as info:
        read_state_dict(path)
    assert "tensor conv.weight" in str(info.value) and "\n" not in str(info.value)


def test_a_stride_bomb_is_refused_before_it_allocates(tmp_path):
    """Stride 0 over 10^10 elements would be a 40 GB copy of one float."""
    from mai_sr.importer.torch_checkpoint import read_state_dict

    path = crafted.conv_checkpoint(tmp_path / "bomb.pth", size=(100000, 100000),
                                   stride=(0, 0))
    with pytest.raises(MaiSrError, match="40,000,000,000 bytes .* exceeds the import limit"):
        read_state_dict(path)


def test_a_zip_bomb_is_refused_before_it_inflates(tmp_path):
    from mai_sr.importer.torch_checkpoint import read_state_dict

    path = crafted.zip_bomb(tmp_path / "bomb.pth", 2 * MAX_SOURCE_BYTES)
    assert path.stat().st_size < MAX_SOURCE_BYTES // 100  # small on disk
    with pytest.raises(MaiSrError, match="inflates to 134,217,728 bytes, over the import limit"):
        read_state_dict(path)


def test_a_member_that_lies_about_its_size_is_damaged_not_read_on(tmp_path):
    """A zip entry whose header understates its inflated size: reading stops at the declared
    size and the CRC fails."""
    from mai_sr.importer.torch_checkpoint import read_state_dict

    path = crafted.conv_checkpoint(tmp_path / "lie.pth")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("archive/data/0")
    for offset in (info.header_offset + 22, data.rfind(b"archive/data/0") - 46 + 24):
        struct_bytes = (100).to_bytes(4, "little")  # declare 100 of the 324 bytes
        data[offset:offset + 4] = struct_bytes
    path.write_bytes(bytes(data))
    with pytest.raises(MaiSrError, match="damaged|truncated|reach element"):
        read_state_dict(path)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9, 0.99])
def test_a_truncated_real_checkpoint_gives_one_line(tmp_path, keep):
    from mai_sr.importer.torch_checkpoint import read_state_dict

    if not ETDS.is_file():
        pytest.skip(f"{ETDS} not present: put ../shared/artifacts beside the checkout")
    data = ETDS.read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(MaiSrError) as info:
        read_state_dict(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_short_storage_is_refused_not_read_past(tmp_path):
    """The storage holds 10 floats; the tensor says 81."""
    from mai_sr.importer.torch_checkpoint import read_state_dict

    tensors = [("conv.weight", "0", 81, 0, (3, 3, 3, 3), (27, 9, 3, 1))]
    path = crafted.torch_zip(tmp_path / "short.pth", tensors, {"0": bytes(40)})
    with pytest.raises(MaiSrError, match="reach element 80 of storage archive/data/0, which "
                                         "holds 10"):
        read_state_dict(path)


def test_code_in_the_pickle_does_not_run(tmp_path):
    from mai_sr.importer.torch_checkpoint import read_state_dict

    marker = tmp_path / "marker"
    path = crafted.torch_zip(tmp_path / "evil.pth", [], {},
                             pickle_bytes=crafted.code_pickle(f"touch {marker}"))
    with pytest.raises(MaiSrError, match="refusing to load os.system"):
        read_state_dict(path)
    assert not marker.exists()


# ------------------------------------------------------------------ Keras HDF5 (TF-free)


def test_an_h5_with_external_storage_is_refused(tmp_path):
    from mai_sr.importer.keras_source import read_keras

    path = crafted.keras_h5_external(tmp_path / "ext.h5", tmp_path / "secret.bin")
    with pytest.raises(MaiSrError, match="external file.*refusing to read another file"):
        read_keras(path)


def test_an_h5_with_an_external_link_is_refused(tmp_path):
    from mai_sr.importer.keras_source import read_keras

    path = crafted.keras_h5_external_link(tmp_path / "link.h5", tmp_path / "other.h5")
    with pytest.raises(MaiSrError, match="external link to .*other.h5"):
        read_keras(path)


def test_an_h5_declaring_a_huge_dataset_is_refused_before_reading(tmp_path):
    from mai_sr.importer.keras_source import read_keras

    path = crafted.keras_h5_huge(tmp_path / "huge.h5")
    assert path.stat().st_size < 1_000_000
    with pytest.raises(MaiSrError, match="over the import limit"):
        read_keras(path)


# ------------------------------------------------------------------ each command, each format


@pytest.mark.tf
@pytest.mark.slow
def test_cli_import_of_hostile_torch_files_is_one_line(tmp_path, capsys):
    marker = tmp_path / "marker"
    cases = {
        "code": crafted.torch_zip(tmp_path / "code.pth", [], {},
                                  pickle_bytes=crafted.code_pickle(f"touch {marker}")),
        "offset": crafted.conv_checkpoint(tmp_path / "offset.pth", offset=10**9),
        "bomb": crafted.zip_bomb(tmp_path / "bomb.pth", 2 * MAX_SOURCE_BYTES),
    }
    for name, path in cases.items():
        err = _cli(capsys, ["import", str(path), "--model", "abpn",
                            "--out", str(tmp_path / f"{name}.weights.h5")])
        assert str(path) in err
        assert not (tmp_path / f"{name}.weights.h5").exists()
    assert not marker.exists()


@pytest.mark.tf
def test_a_savedmodel_is_read_as_data_never_run(tmp_path, capsys):
    """tf.saved_model.load of this folder writes the marker (checked); the import reads its
    variables and object graph without running it, so the marker never appears."""
    from mai_sr._tf import tf
    from mai_sr.importer.keras_source import read_savedmodel

    marker = tmp_path / "marker"
    folder = crafted.savedmodel_that_writes(tmp_path / "evil", marker)
    net = read_savedmodel(folder)
    assert not marker.exists()
    assert [c.kernel.shape for c in net.convs] == [(3, 3, 3, 27)]
    err = _cli(capsys, ["import", str(folder), "--model", "abpn",
                        "--out", str(tmp_path / "evil.weights.h5")])
    assert not marker.exists(), err
    # the file really is hostile: TensorFlow's own loader runs its initializer
    tf.saved_model.load(str(folder))
    assert marker.exists()


@pytest.mark.tf
def test_the_nju_savedmodel_reads_as_tf_loads_it(tmp_path):
    """Read as data, the published SavedModel gives the same convs, in the same order, as
    loading it with TensorFlow (a trusted file)."""
    from mai_sr._tf import tf
    from mai_sr.importer.keras_source import read_savedmodel

    folder = SHARED_ARTIFACTS / "nju_abpn" / "savedmodel"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present: put ../shared/artifacts beside the checkout")
    net = read_savedmodel(folder)
    loaded = [v.numpy() for v in tf.saved_model.load(str(folder)).variables]
    kernels = [v for v in loaded if v.ndim == 4]
    biases = [v for v in loaded if v.ndim == 1]
    assert len(net.convs) == len(kernels) == 7
    for conv, kernel, bias in zip(net.convs, kernels, biases):
        np.testing.assert_array_equal(conv.kernel, kernel)
        np.testing.assert_array_equal(conv.bias, bias)


@pytest.mark.tf
def test_a_keras_h5_lambda_never_runs(tmp_path, capsys):
    from mai_sr._tf import keras
    from mai_sr.importer.keras_source import read_keras

    marker = tmp_path / "marker"
    path = crafted.keras_h5_with_lambda(tmp_path / "evil.h5", marker)
    net = read_keras(path)
    assert not marker.exists() and [c.kernel.shape for c in net.convs] == [(3, 3, 3, 27)]
    _cli(capsys, ["import", str(path), "--model", "abpn",
                  "--out", str(tmp_path / "evil.weights.h5")])
    assert not marker.exists()
    # the file really is hostile: Keras' own loader runs the Lambda
    keras.config.enable_unsafe_deserialization() if hasattr(keras, "config") else None
    keras.models.load_model(str(path), safe_mode=False)
    assert marker.exists()


@pytest.mark.tf
def test_a_tflite_with_a_flex_op_never_runs(tmp_path, capsys):
    marker = tmp_path / "marker"
    path = crafted.tflite_that_writes(tmp_path / "evil.tflite", marker)
    for argv in (["eval", str(path)], ["upscale", "--model", str(path),
                                         str(tmp_path / "in.png"), str(tmp_path / "out.png")],
                 ["bench", str(path)]):
        if argv[0] == "upscale":
            from PIL import Image

            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in.png")
        err = _cli(capsys, argv)
        assert "custom op(s) FlexWriteFile" in err, err
    assert not marker.exists()
    # lint reads the graph and reports, never runs it; import reads constants only
    from mai_sr.cli import main

    main(["lint", str(path)])
    capsys.readouterr()
    _cli(capsys, ["import", str(path), "--model", "abpn",
                  "--out", str(tmp_path / "evil.weights.h5")])
    assert not marker.exists()
