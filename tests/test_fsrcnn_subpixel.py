"""The layout option ``upsample="subpixel"`` of FSRCNN: the stride-s transposed conv written as
a conv to s^2 times the channels and depth-to-space, each tap moved to the output phase it
feeds. Checked against Keras's own Conv2DTranspose on random weights, against the published
layout imported from the real checkpoints (which the torch tests check against the authors'
PyTorch definitions), and in INT8: no TRANSPOSE_CONV left, one weight scale per output
phase and colour (the transposed conv's file has one in all), and on Set5 a smaller PTQ drop
than the transposed conv's.
"""

from __future__ import annotations


import numpy as np
import pytest

from conftest import ptq_drops_on_set5, zoo_checkpoint
from mai_sr import registry

OPTIONS = {"fsrcnn_subpixel": "fsrcnn", "fsrcnn_relu_pair_subpixel": "fsrcnn"}


def test_both_options_name_fsrcnn_as_the_network_they_compute():
    assert {name: registry.published_layout(name) for name in OPTIONS} == OPTIONS


@pytest.mark.tf
@pytest.mark.parametrize("scale, side", [(2, 5), (3, 4), (4, 3)])
def test_the_subpixel_conv_equals_keras_transposed_conv(scale, side):
    """Random 9x9 taps in the top-left of the aligned kernel (as FSRCNN's deploy graph holds
    them) and random inputs: Keras's Conv2DTranspose against the moved conv, depth-to-space
    after it; the side is the smallest covering every phase's taps."""
    from mai_sr._tf import keras, tf
    from mai_sr.models.blocks import SubpixelSupport, deconv_kernel_size, subpixel_from_transposed

    rng = np.random.default_rng(scale)
    size = deconv_kernel_size(9, scale)
    kernel = np.zeros((size, size, 3, 5), np.float32)
    kernel[:9, :9] = rng.normal(size=(9, 9, 3, 5))
    bias = rng.normal(size=3).astype(np.float32)
    x = rng.normal(size=(2, 7, 6, 5)).astype(np.float32)
    deconv = keras.layers.Conv2DTranspose(3, size, strides=scale, padding="same")
    deconv.build((None, None, None, 5))
    deconv.set_weights([kernel, bias])
    conv_kernel, conv_bias = subpixel_from_transposed(kernel, bias, scale, 9)
    assert conv_kernel.shape == (side, side, 5, 3 * scale * scale)
    conv = keras.layers.Conv2D(3 * scale * scale, side, padding="same")
    conv.build((None, None, None, 5))
    conv.set_weights([conv_kernel, conv_bias])
    expected = deconv(x).numpy()
    np.testing.assert_allclose(tf.nn.depth_to_space(conv(x), scale).numpy(), expected,
                               atol=1e-5 * np.abs(expected).max())
    # every tap moved once: the same 81 per (colour, input), the support mask on exactly them
    assert np.count_nonzero(conv_kernel) == np.count_nonzero(kernel)
    mask = SubpixelSupport(9, scale).mask()
    np.testing.assert_array_equal(mask[:, :, 0] > 0, (conv_kernel != 0).any(axis=2))


@pytest.mark.tf
def test_training_keeps_the_taps_no_phase_has_at_zero():
    """The training graph's subpixel conv after an optimizer step on random data: the taps
    outside the published support stay zero (a larger network would not be FSRCNN)."""
    from mai_sr._tf import keras, tf
    from mai_sr.models import create_model

    model = create_model("fsrcnn_relu_pair_subpixel", scale=3)
    layer = model.get_layer("subpixel_conv")
    support = layer.deploy_constraint.mask()  # a ScaledConv2D: its constraint in deploy units
    optimizer = keras.optimizers.Adam(1e-2)
    x = tf.random.uniform((2, 12, 12, 3), 0, 255)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x) - 128.0))
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                  model.trainable_variables))
    kernel = layer.kernel.numpy()
    assert np.abs(kernel * (support == 0)).max() == 0
    assert np.abs(kernel * support).max() > 0


@pytest.mark.tf
@pytest.mark.slow
def test_the_subpixel_layout_loses_less_in_int8(tmp_path, shared_data):
    """PTQ of FSRCNN x3 in its two-ReLU layout (``mai-sr export``'s default calibration, the
    builtin photos), with the transposed conv and with the subpixel conv: every tensor
    integer, no TRANSPOSE_CONV in the subpixel file, its conv kernel on 27 int8 grids (one
    per phase and colour, against the transposed conv's one for the whole kernel), and on
    Set5 a drop against the float network at least 0.03 dB smaller (measured 0.069 dB
    smaller RGB, 30.504 against 30.435)."""

    def check_graph(model, graph):
        assert ("TRANSPOSE_CONV" in {op.type for op in graph.ops}) == (model == "fsrcnn_relu_pair")
        last = [t for t in graph.tensors if t.dtype == "int8" and len(t.shape) == 4
                and t.shape[0] in (3, 27) and t.shape[-1] == 112]
        # TFLite's converter stores TRANSPOSE_CONV weights on one grid, a conv's per channel
        assert [len(t.quantization.scales) for t in last] == [27 if "subpixel" in model else 1]

    drops = ptq_drops_on_set5(zoo_checkpoint("FSRCNN_x3"),
                              ("fsrcnn_relu_pair", "fsrcnn_relu_pair_subpixel"), tmp_path,
                              shared_data, check_graph)
    assert drops["fsrcnn_relu_pair_subpixel"] < drops["fsrcnn_relu_pair"] - 0.03
