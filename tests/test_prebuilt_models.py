"""tests/data holds what tests/data/make_test_models.py writes: every prebuilt model is
byte-identical to a fresh build of its entry in tflite_factory.PREBUILT (the converter is
deterministic), no file is left over, and the NumPy reference network that TF-free tests
compare against equals the TF graph the models are converted from."""

import numpy as np
import pytest

import tflite_factory

pytestmark = [pytest.mark.tf, pytest.mark.slow]

REBUILD = "run `python tests/data/make_test_models.py` and commit tests/data"
SIZE_LIMIT_BYTES = 1024 * 1024  # the test models stay small: they live in the repository


def test_prebuilt_files_are_what_the_script_writes(tmp_path):
    shipped = {p.stem for p in tflite_factory.DATA_DIR.glob("*.tflite")}
    assert shipped == set(tflite_factory.PREBUILT), REBUILD
    for name in tflite_factory.PREBUILT:
        fresh = tflite_factory.build_prebuilt(name, tmp_path / f"{name}.tflite")
        assert fresh.read_bytes() == tflite_factory.prebuilt(name).read_bytes(), \
            f"{name}.tflite differs from its builder: {REBUILD}"
    assert sum(p.stat().st_size for p in tflite_factory.DATA_DIR.iterdir()) < SIZE_LIMIT_BYTES


@pytest.mark.parametrize("shape", [(13, 17), (1, 1), (24, 32)])
def test_numpy_reference_equals_the_tf_network(shape):
    lr = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    expected = tflite_factory.reference_sr_tf(lr)
    got = tflite_factory.reference_sr(lr)
    assert got.shape == expected.shape == (shape[0] * 3, shape[1] * 3, 3)
    np.testing.assert_allclose(got, expected, atol=1e-3)
