"""The layout option ``copies`` of FSRCNN: in its two-ReLU, subpixel layout every hidden ReLU
tensor written k times, each consumer reading each copy with 1/k of the weight, which
quantization offsets onto interleaved int8 grids (``dither_copies``). Checked on random
weights against the network without copies, on the real checkpoint (the import computes
the published network: tests/test_layout_imports.py), and as quantization starts: after
the dither each second copy sits half a step above the first. The shipped weight's INT8
figures are checked against the README by tests/test_pretrained.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import zoo_checkpoint
from mai_sr import registry
from mai_sr.errors import MaiSrError

OPTION = "fsrcnn_relu_pair_subpixel_copies"


def test_the_option_names_fsrcnn_as_the_network_it_computes():
    assert registry.published_layout(OPTION) == "fsrcnn"
    assert registry.computes_from(OPTION) == ("fsrcnn",)


@pytest.mark.tf
def test_copies_need_the_two_relu_subpixel_layout_and_one_count_per_layer():
    from mai_sr.models import create_model

    for bad in (dict(copies=[2] * 6), dict(copies=[2, 0, 1, 1, 1, 1, 1]),
                dict(copies=[2] * 7, activation="prelu", upsample="subpixel"),
                dict(copies=[2] * 7, activation="relu_pair", upsample="transposed")):
        with pytest.raises(MaiSrError, match="copies"):
            create_model("fsrcnn", deploy=True, **bad)


@pytest.mark.tf
def test_copied_weights_compute_the_network_without_copies():
    """Random weights in the two-ReLU subpixel net and random pixels: the net with every
    hidden tensor twice (and with uneven counts) gives the same image; each copy's kernel
    column and bias equal the original's, each consumer's rows are halves."""
    from mai_sr.models import create_model
    from mai_sr.models.blocks import copy_channel_weights

    rng = np.random.default_rng(0)
    source = create_model("fsrcnn_relu_pair_subpixel", deploy=True)
    for layer in source.layers:  # kernels of unit gain, so no tensor saturates the clip
        if layer.weights:
            kernel, bias = layer.get_weights()
            layer.set_weights([rng.normal(0, np.prod(kernel.shape[:-1]) ** -0.5, kernel.shape)
                               .astype(np.float32), rng.normal(0, 5, bias.shape)
                               .astype(np.float32)])
    x = rng.uniform(0, 255, (1, 9, 11, 3)).astype(np.float32)
    expected = np.asarray(source(x))
    convs = [f"conv{i}" for i in range(1, 8)] + ["subpixel_conv"]
    for counts in ([2] * 7, [3, 1, 2, 1, 1, 2, 2]):
        target = create_model("fsrcnn_relu_pair_subpixel_copies", deploy=True, copies=counts)
        copy_channel_weights(source, target, convs)
        np.testing.assert_allclose(np.asarray(target(x)), expected, rtol=1e-5,
                                   atol=1e-5 * np.abs(expected).max())
        kernel, bias = target.get_layer("conv1").get_weights()
        width = source.get_layer("conv1").filters
        for copy in range(1, counts[0]):  # whole blocks, appended
            np.testing.assert_array_equal(kernel[..., copy * width:(copy + 1) * width],
                                          kernel[..., :width])
            np.testing.assert_array_equal(bias[copy * width:(copy + 1) * width], bias[:width])
        original, _ = source.get_layer("conv2").get_weights()
        rows = target.get_layer("conv2").get_weights()[0]
        for copy in range(counts[0]):
            np.testing.assert_allclose(rows[:, :, copy * width:(copy + 1) * width,
                                            :original.shape[3]], original / counts[0],
                                       rtol=1e-6)


@pytest.mark.tf
@pytest.mark.slow
def test_the_dither_puts_each_second_copy_half_a_step_above_the_first(tmp_path, shared_data):
    """The real x3 checkpoint imported into the option, equalized and dithered on Set5 crops
    as the QAT start does on training crops: the second copy of every channel of every
    hidden tensor sits half of its tensor's int8 step (its widest channel / 255) above the
    first, kernels stay, and in float the network moves by less than the widest step (where
    a copy is inactive its consumer's bias still takes the offset back, see
    ``dither_copies``)."""
    from mai_sr.data import iter_pairs
    from mai_sr.importer import import_weights
    from mai_sr.models.qat.equalize import _extents, dither_copies, equalize_channels, \
        homogeneous_links
    from mai_sr.runs import load_deploy_weights

    weights = tmp_path / "copies.weights.h5"
    import_weights(zoo_checkpoint("FSRCNN_x3"), OPTION, weights)
    net = load_deploy_weights(weights, OPTION, 3)
    lrs = [p.lr[:48, :48] for p in list(iter_pairs(shared_data / "Set5", scale=3))[:3]]
    batches = [np.stack([lr.astype(np.float32) for lr in lrs])]
    equalized = equalize_channels(net, batches)
    before = {layer.name: [w.copy() for w in layer.get_weights()]
              for layer in equalized.layers if layer.weights}
    steps = {link.producer: float(_extents(equalized, link, batches)[0].max()) / 255
             for link in homogeneous_links(equalized)}
    assert sorted(steps) == [f"conv{i}" for i in range(1, 8)]
    assert dither_copies(equalized, batches) == sum(
        equalized.get_layer(name).filters // 2 for name in steps)
    for name, step in steps.items():
        kernel, bias = equalized.get_layer(name).get_weights()
        assert np.array_equal(kernel, before[name][0])
        half = kernel.shape[-1] // 2
        # the step measured after the copies upstream moved, so a hair wider than before
        np.testing.assert_allclose((bias[half:] - bias[:half]) / step, 0.5, atol=0.03)
    x = batches[0]
    gap = np.abs(np.asarray(net(x)) - np.asarray(equalized(x)))
    assert 0 < gap.max() < max(steps.values())
    # half of each two-ReLU tensor is 0, so the moved output is not rare: about a grey level
    print(f"float output moved by {gap.mean():.3f} grey levels on average, {gap.max():.3f} max")
    assert 0.2 < gap.mean() < 2.0
