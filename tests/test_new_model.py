"""Adding a model is one file plus one registry line: a throwaway model, written to a temporary
module and registered by one entry in ``mai_sr.registry.MODELS``, is built, profiled, trained
(FP32 + QAT, its own recipe), exported to INT8 TFLite and run, with no other change."""

import textwrap

import numpy as np
import pytest

from mai_sr import registry
from mai_sr.cli import build_parser
from mai_sr.errors import MaiSrError

# The whole model: what a contributor writes in mai_sr/models/<name>.py.
TOY_MODULE = textwrap.dedent('''
    """A throwaway model: one ReLU conv, one linear conv, the nearest-conv anchor."""
    from mai_sr._tf import keras
    from mai_sr.models.blocks import (conv_block, first_conv_args, last_conv_args,
                                      make_anchor, sr_head, sr_input)

    DEFAULTS = dict(channels=8, normalize=True, input_size=None)
    DEPLOY = dict(normalize=False)
    RECIPE = {"loss": "l2", "warmup": 0.0}

    def build(scale=3, *, channels, normalize, input_size):
        inp = sr_input(input_size)
        x = conv_block("conv", channels, "conv1", "relu", **first_conv_args(normalize))(inp)
        x = conv_block("conv", 3 * scale * scale, "conv2", **last_conv_args(normalize))(x)
        x = keras.layers.Add(name="add_anchor")([x, make_anchor("nearest_conv", inp, scale)])
        return keras.Model(inp, sr_head(x, scale, "before_d2s"), name="toy")
''')
CHANNELS = 8


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """'toy' registered: its module file on sys.path plus the one registry line."""
    folder = tmp_path / "contrib"
    folder.mkdir()
    (folder / "toy_sr.py").write_text(TOY_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setitem(registry.MODELS, "toy", "toy_sr")
    return "toy"


def test_the_cli_offers_only_registered_models(toy):
    assert toy in registry.list_models()
    for argv in (["train", "--model", toy, "--scale", "2"], ["profile", "--model", toy],
                 ["export", "x.tflite", "--model", toy, "--weights", "w.h5"]):
        assert build_parser().parse_args(argv).model == toy
    with pytest.raises(MaiSrError, match="unknown model 'toy2'"):
        registry.check_model_name("toy2")


@pytest.mark.parametrize("scale", registry.SCALES)
@pytest.mark.tf
def test_a_registered_model_builds_and_profiles_at_every_scale(toy, scale):
    from mai_sr.models import collapse, create_model
    from mai_sr.profile import profile_model

    # Parameters by hand: 3x3 convs 3 -> C and C -> 3s^2 (the 1x1 anchor is frozen).
    out = 3 * scale * scale
    prof = profile_model(toy, size=(16, 20), scale=scale)
    assert prof.params == 9 * 3 * CHANNELS + CHANNELS + 9 * CHANNELS * out + out
    assert prof.frozen_params == 3 * out
    train = create_model(toy, scale=scale)
    x = np.random.default_rng(scale).uniform(0, 255, (1, 7, 9, 3)).astype(np.float32)
    np.testing.assert_allclose(collapse(train)(x).numpy(), train(x).numpy(), atol=1e-3)
    assert train(x).shape == (1, 7 * scale, 9 * scale, 3)


@pytest.mark.tf
@pytest.mark.slow
def test_a_registered_model_trains_exports_and_runs(toy, shared_data, tmp_path):
    from mai_sr.export.convert import export
    from mai_sr.tflite.runtime import TFLiteSR
    from mai_sr.train import TrainConfig, read_run_config, train_from_config

    config = TrainConfig(model=toy, scale=2, data=str(shared_data / "Set5"),
                         out=str(tmp_path / "run"), steps=4, patch=12, batch=2, val_every=4,
                         ckpt_every=4, log_every=2, qat=True, qat_steps=2)
    assert (config.loss, config.warmup, config.qat_loss) == ("l2", 0.0, "l2")  # its RECIPE
    run = train_from_config(config, quiet=True)
    stored = read_run_config(run)
    assert (stored["model"], stored["scale"], stored["loss"]) == (toy, 2, "l2")
    fixed, dynamic = export(tmp_path / "toy.tflite", run=run, shape=(12, 16), dynamic=True)
    lr = np.random.default_rng(0).integers(0, 256, (10, 14, 3), dtype=np.uint8)
    assert TFLiteSR(dynamic).upscale(lr).shape == (20, 28, 3)
    assert TFLiteSR(fixed).upscale(lr).shape == (20, 28, 3)
