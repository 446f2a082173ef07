"""The calibration floor of post-training quantization: a set too small is refused, and the
calibrated model is checked against its FP32 model on its calibration crops and on the
builtin photos (INT8 vs FP32 PSNR in the provenance and on stderr)."""

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.tf, pytest.mark.slow]


@pytest.fixture(scope="module")
def abpn_float():
    from mai_sr.models import create_model
    from mai_sr.pretrained import pretrained_path

    model = create_model("abpn", scale=3, deploy=True)
    model.load_weights(str(pretrained_path("abpn", "weights")))
    return model


def test_one_small_image_is_refused_in_one_line(tmp_path, shared_data, capsys):
    """One 48x48 image (256 LR pixels at x3) once gave a file below bicubic, exit 0."""
    from mai_sr.cli import main
    from mai_sr.pretrained import pretrained_path

    folder = tmp_path / "calib"
    folder.mkdir()
    with Image.open(shared_data / "Set5" / "baby.png") as im:
        im.crop((200, 0, 248, 48)).save(folder / "patch.png")
    assert main(["export", str(tmp_path / "m.tflite"), "--model", "abpn", "--weights",
                 str(pretrained_path("abpn", "weights")), "--calib", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "--calib" in err and "too little calibration data" in err
    assert "256 distinct LR pixels of 1 image(s)" in err and err.count("\n") == 1
    assert not (tmp_path / "m.tflite").exists()


def test_the_check_is_the_psnr_of_int8_against_fp32_outputs(abpn_float, shared_data):
    from skimage.metrics import peak_signal_noise_ratio

    from mai_sr.export.convert import calibration_batches, int8_vs_fp32_psnr
    from mai_sr.models.qat.quantize import quantize_model

    crops = calibration_batches(str(shared_data / "Set5"), 4, crop=48)
    int8 = quantize_model(abpn_float, calibration=crops)

    def pixels(model):
        return np.concatenate([np.clip(np.rint(np.asarray(model(c, training=False))), 0, 255)
                               .astype(np.uint8).ravel() for c in crops])

    want = peak_signal_noise_ratio(pixels(abpn_float), pixels(int8), data_range=255)
    assert int8_vs_fp32_psnr(abpn_float, int8, crops) == pytest.approx(want, abs=1e-9)
    assert int8_vs_fp32_psnr(abpn_float, abpn_float, crops) == float("inf")


def test_a_flat_calibration_set_warns_and_a_varied_one_does_not(abpn_float, tmp_path,
                                                                 shared_data, capsys):
    from mai_sr.export.convert import CALIB_HELD_OUT_DROP_DB, calibrate

    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (400, 400), (120, 110, 100)).save(flat / "grey.png")
    _, record = calibrate(abpn_float, str(flat), 20, 3)
    err = capsys.readouterr().err
    check = record["check"]["int8_vs_fp32_psnr"]
    assert check["builtin"] < check["calibration"] - CALIB_HELD_OUT_DROP_DB
    assert "INT8 vs FP32 PSNR" in err and "warning: --calib" in err
    assert record["check"]["images"] == 1 and record["check"]["lr_pixels"] > 96 * 96

    _, record = calibrate(abpn_float, str(shared_data / "Set5"), 20, 3)
    err = capsys.readouterr().err
    check = record["check"]["int8_vs_fp32_psnr"]
    assert check["builtin"] > 40 and check["calibration"] > 40  # a faithful INT8 model
    assert "warning" not in err and record["check"]["images"] > 1


def test_the_export_records_the_check_beside_the_calibration(tmp_path, shared_data, capsys):
    import json

    from mai_sr.export.convert import export
    from mai_sr.pretrained import pretrained_path

    export(tmp_path / "m.tflite", model="abpn", weights=pretrained_path("abpn", "weights"),
           shape=(24, 24), calib=str(shared_data / "Set5"), calib_n=3)
    side = json.loads((tmp_path / "m.tflite.json").read_text())
    assert side["calibration"] == {"data": "Set5", "crops": 3, "crop": 96}
    check = side["calibration_check"]
    assert check["images"] == 3 and check["lr_pixels"] > 96 * 96
    assert check["int8_vs_fp32_psnr"]["calibration"] > 40
    assert f"{check['int8_vs_fp32_psnr']['builtin']:.2f} dB on the builtin photos" in \
        capsys.readouterr().err
