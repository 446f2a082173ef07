"""The layout option ``tanh_groups`` of ESPCN: each tanh layer's conv split by output channels
into groups of like range, each group through its own tanh, the groups concatenated. Checked
against the published layout imported from the real checkpoints (which the torch tests check
against the authors' PyTorch definitions), on the check images the groups are sorted by, and
in INT8: each group's tanh reads its own input range, the concatenations stay on TANH's
fixed 1/128 grid (no requantization), and on Set5 the PTQ drop is smaller than the
published layout's.
"""

from __future__ import annotations


import numpy as np
import pytest

from conftest import ptq_drops_on_set5, zoo_checkpoint
from mai_sr import registry


def test_the_option_names_espcn_as_the_network_it_computes():
    assert registry.published_layout("espcn_tanh_groups") == "espcn"
    assert registry.published_layout("espcn") is None


@pytest.mark.tf
def test_the_option_splits_each_tanh_layer_into_groups_of_16():
    from mai_sr._tf import keras
    from mai_sr.models import MaiSrError, create_model

    for deploy in (True, False):
        model = create_model("espcn_tanh_groups", deploy=deploy)
        names = {layer.name for layer in model.layers}
        assert "conv1" not in names and "conv2" not in names
        for layer, groups in ((1, 4), (2, 2)):
            convs = [model.get_layer(f"conv{layer}_g{g}") for g in range(1, groups + 1)]
            assert [conv.filters for conv in convs] == [16] * groups
            assert isinstance(model.get_layer(f"tanh{layer}"), keras.layers.Concatenate)
            assert f"conv{layer}_g{groups + 1}" not in names
    with pytest.raises(MaiSrError, match="3 groups do not split 64 channels"):
        create_model("espcn", tanh_groups=(3, 1))


@pytest.mark.tf
def test_the_groups_hold_channels_of_like_range_on_the_check_images():
    """relayout deals the channels out by their peak |pre-activation| on the images it is
    given: every channel of a group peaks no higher than any channel of the next group, and
    the network is unchanged."""
    from mai_sr._tf import keras
    from mai_sr.models import create_model, relayout

    rng = np.random.default_rng(0)
    published = create_model("espcn", deploy=True)
    for layer in published.layers:  # channels of very different ranges
        if layer.weights:
            kernel, bias = layer.get_weights()
            widths = rng.uniform(0.01, 1.0, kernel.shape[-1]).astype(np.float32)
            layer.set_weights([kernel * widths, bias])
    images = [rng.integers(0, 256, (20, 24, 3)).astype(np.uint8) for _ in range(3)]
    grouped, worst = relayout(published, "espcn_tanh_groups", 3, images)
    assert worst <= 1e-2
    for layer, groups in ((1, 4), (2, 2)):
        peaks = []
        for g in range(1, groups + 1):
            probe = keras.Model(grouped.inputs, grouped.get_layer(f"conv{layer}_g{g}").output)
            found = np.max([np.abs(np.asarray(probe(lr[None].astype(np.float32)))).max(
                axis=(0, 1, 2)) for lr in images], axis=0)
            peaks.append((found.min(), found.max()))
        assert all(high <= low for (_, high), (low, _) in zip(peaks, peaks[1:]))
        assert peaks[-1][1] > 1.5 * peaks[0][1]  # the ranges do differ


@pytest.mark.tf
@pytest.mark.slow
def test_the_groups_lose_less_in_int8(tmp_path, shared_data):
    """PTQ of ESPCN x3 (``mai-sr export``'s default calibration, the builtin photos) in both
    layouts: every tensor integer; in the grouped file six TANH ops, those of a layer on
    ranges of their own, each concatenation on TANH's fixed grid (scale 1/128, zero point 0)
    in and out, so nothing is requantized; on Set5 a drop against the float network at least
    0.08 dB smaller (measured 0.145 dB smaller RGB, 30.795 against 30.650)."""

    def check_graph(model, graph):
        tanh = [op for op in graph.ops if op.type == "TANH"]
        concat = [op for op in graph.ops if op.type == "CONCATENATION"]
        if model == "espcn":
            assert len(tanh) == 2 and not concat
            return
        assert len(tanh) == 6 and len(concat) == 2
        input_scales = [graph.tensors[op.inputs[0]].quantization.scales[0] for op in tanh]
        assert len(set(input_scales[:4])) >= 3
        for op in concat:
            for index in (*op.inputs, *op.outputs):
                quant = graph.tensors[index].quantization
                assert quant.scales == (1 / 128,) and quant.zero_points == (0,)
        # input and output casts only: no requantization between the groups
        assert sum(op.type == "QUANTIZE" for op in graph.ops) == 2

    drops = ptq_drops_on_set5(zoo_checkpoint("ESPCN_x3"), ("espcn", "espcn_tanh_groups"),
                              tmp_path, shared_data, check_graph)
    assert drops["espcn_tanh_groups"] < drops["espcn"] - 0.08
