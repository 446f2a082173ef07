"""The layout option ``activation="relu_pair"`` of ECBSR and FSRCNN: each PReLU written as
two ReLUs, PReLU_a(z) = relu(z) - a relu(-z). The option is the same network as the published layout
(checked against the published layout imported from the real checkpoints, which the torch
tests check against the authors' PyTorch definitions), laid out for per-tensor INT8: one
ReLU tensor per layer instead of a conv output and a PReLU output, and the slopes in
per-channel-quantized kernels instead of one int8 range per layer. The INT8 check compares
the two layouts' drops against the float network on Set5 (scikit-image's PSNR through
mai-sr's scorer, as everywhere).
"""

from __future__ import annotations


import numpy as np
import pytest

from conftest import ptq_drops_on_set5, zoo_checkpoint
from mai_sr import registry
from mai_sr.errors import MaiSrError

PAIRS = {"ecbsr_m4c16_relu_pair": "ecbsr", "ecbsr_m4c32_relu_pair": "ecbsr_m4c32",
         "ecbsr_m6c40_relu_pair": "ecbsr_m6c40", "fsrcnn_relu_pair": "fsrcnn"}


def test_a_layout_option_names_the_network_it_computes():
    assert {name: registry.published_layout(name) for name in PAIRS} == PAIRS
    for name in ("ecbsr", "ecbsr_m6c40", "fsrcnn", "abpn", "etds_l"):
        assert registry.published_layout(name) is None


@pytest.mark.tf
def test_the_option_writes_every_prelu_as_two_fused_relus():
    from mai_sr._tf import keras
    from mai_sr.models import create_model

    plain = create_model("ecbsr_m6c40", deploy=True)
    pair = create_model("ecbsr_m6c40_relu_pair", deploy=True)
    assert not [layer for layer in pair.layers if isinstance(layer, keras.layers.PReLU)]
    hidden = [layer for layer in plain.layers if isinstance(layer, keras.layers.PReLU)]
    assert len(hidden) == 7
    for i in range(1, 8):
        conv = pair.get_layer(f"conv{i}")
        assert conv.get_config()["activation"] == "relu"
        assert conv.kernel.shape[-1] == 2 * plain.get_layer(f"conv{i}").kernel.shape[-1]
    assert pair.get_layer("conv8").kernel.shape[-2:] == (80, 27)
    fsrcnn = create_model("fsrcnn_relu_pair", deploy=True)  # the transposed conv reads 2 x 56
    assert not [layer for layer in fsrcnn.layers if isinstance(layer, keras.layers.PReLU)]
    assert fsrcnn.get_layer("deconv").kernel.shape[-2:] == (3, 112)


@pytest.mark.tf
def test_a_rewrite_that_computes_another_network_is_refused(monkeypatch):
    from mai_sr.models import create_model, ecbsr, relayout

    plain = create_model("ecbsr", scale=3, deploy=True)
    lr = [np.random.default_rng(0).integers(0, 256, (20, 24, 3)).astype(np.uint8)]
    pair, worst = relayout(plain, "ecbsr_m4c16_relu_pair", 3, lr)
    assert worst <= 1e-2
    original = ecbsr.relayout

    def off_by_one_slope(source, target, images=None):
        original(source, target, images)
        kernel, bias = target.get_layer("conv2").get_weights()
        kernel[:, :, 16:, :] *= 1.5  # the slopes of prelu1, half as large again
        target.get_layer("conv2").set_weights([kernel, bias])

    monkeypatch.setattr(ecbsr, "relayout", off_by_one_slope)
    with pytest.raises(MaiSrError, match="differs from ecbsr by"):
        relayout(plain, "ecbsr_m4c16_relu_pair", 3, lr)
    with pytest.raises(MaiSrError, match="is a published layout, and no published network"):
        relayout(plain, "ecbsr", 3, lr)


@pytest.mark.tf
@pytest.mark.slow
def test_relu_pairs_lose_less_in_int8_than_prelus(tmp_path, shared_data):
    """PTQ of ECBSR-M4C16 x3 (``mai-sr export``'s default calibration, the builtin photos)
    in both layouts: every tensor integer, and on Set5 the relu pairs lose under 0.05 dB RGB
    against the float network and less than the PReLU layout loses (measured 0.023 against
    0.083 dB, ``benchmarks/zoo.py``)."""

    def check_graph(model, graph):
        assert ("PRELU" in {op.type for op in graph.ops}) == (model == "ecbsr")

    drops = ptq_drops_on_set5(zoo_checkpoint("ECBSR_M4C16_x3"), ("ecbsr", "ecbsr_m4c16_relu_pair"),
                              tmp_path, shared_data, check_graph)
    assert drops["ecbsr_m4c16_relu_pair"] <= 0.05
    assert drops["ecbsr_m4c16_relu_pair"] < drops["ecbsr"] - 0.02


def test_a_layout_of_another_size_is_one_line_naming_both(tmp_path):
    from mai_sr.importer import import_weights

    with pytest.raises(MaiSrError, match=r"holds ECBSR M4C16 x3.*\(mai-sr ecbsr\); --model "
                                         r"ecbsr_m4c32_relu_pair is a layout of ecbsr_m4c32"):
        import_weights(zoo_checkpoint("ECBSR_M4C16_x3"), "ecbsr_m4c32_relu_pair",
                       tmp_path / "w.weights.h5")
    assert not list(tmp_path.iterdir())
