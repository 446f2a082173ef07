"""Training graphs work in the [0, 1] domain, collapse() folds it away exactly, and they train.

Regression: on raw [0, 255] pixels, ABPN with seed 0 and Adam at 1e-3 shut off a whole ReLU
layer within ~50 steps (its pre-activations, ~10 in pixel units, were pushed negative) and
stayed at nearest-neighbour upscaling for good: Adam moves a bias by about the learning rate
per step, too little to re-centre pre-activations of that size. References here are
independent of the layers under test: ``tf.nn.conv2d`` on explicitly scaled values, NumPy
nearest-neighbour upsampling, and the loss of that anchor alone.
"""

import numpy as np
import pytest

from mai_sr._tf import keras, tf
from mai_sr.data import load_pairs
from mai_sr.train.dataset import make_train_dataset
from mai_sr.models import collapse, create_model
from mai_sr.models.blocks import ScaledConv2D
from mai_sr.models.qat.weight_clip import apply_weight_clip, clip_kernel
from mai_sr.registry import list_models

pytestmark = pytest.mark.tf  # Keras models and training steps

MODELS = list_models()
# The MAI 2022 models' training graphs work on [0, 1] values with an anchor (ScaledConv2D
# first and last convs); the zoo families' plain chains and their collapse are checked in
# tests/test_zoo_models.py.
LAST_CONV = {"abpn": "conv7", "ncnet": "conv7", "scsrn": "conv_out", "xcat": "conv_out"}
ANCHORED = [name for name in MODELS if name in LAST_CONV]


def conv_reference(x, kernel, bias):
    """'same' convolution + bias by ``tf.nn.conv2d`` (not the layer code under test)."""
    return tf.nn.conv2d(x, kernel, 1, "SAME").numpy() + bias


def nearest_upscale(lr):
    return np.repeat(np.repeat(lr, 3, axis=1), 3, axis=2)


@pytest.fixture(scope="module")
def set5(shared_data):
    return load_pairs(shared_data / "Set5")


def test_scaled_conv_is_a_conv_on_scaled_values_and_folds_into_a_plain_conv_exactly():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (1, 9, 11, 5)).astype(np.float32)
    in_scale = [1 / 255, 1 / 255, 1.0, 0.5, 2.0]  # one factor per input channel
    layer = ScaledConv2D(4, 3, padding="same", activation="relu", input_scale=in_scale,
                         output_scale=255.0, name="scaled")
    layer.build(x.shape)
    kernel = rng.normal(0, 0.3, (3, 3, 5, 4)).astype(np.float32)
    bias = rng.normal(0, 0.2, 4).astype(np.float32)
    layer.set_weights([kernel, bias])
    got = layer(x).numpy()
    expected = np.maximum(255.0 * conv_reference(x * np.float32(in_scale), kernel, bias), 0)
    assert (expected == 0).any() and (expected > 0).any()  # the ReLU bites
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)

    folded_kernel, folded_bias = layer.collapse()
    np.testing.assert_allclose(folded_kernel, kernel * np.float64(in_scale)[:, None] * 255,
                               rtol=1e-6)
    np.testing.assert_allclose(folded_bias, bias * 255.0, rtol=1e-6)
    plain = layer.deploy_layer()
    assert type(plain) is keras.layers.Conv2D and plain.name == "scaled"
    plain.build(x.shape)
    plain.set_weights([folded_kernel, folded_bias])
    # The training layer convolves with the very kernel it folds, so equality is exact.
    np.testing.assert_array_equal(plain(x).numpy(), got)
    with pytest.raises(ValueError, match="input_scale"):
        ScaledConv2D(4, 3, input_scale=[1.0, 2.0])(x)  # neither one factor nor 5


@pytest.mark.parametrize("name", ANCHORED)
def test_training_graph_convs_work_on_unit_range_values(name):
    """The first conv sees the image / 255 and the last conv's output is x 255 (SCSRN's last
    conv reads [image, features]: only the image part is / 255); the deploy graph holds
    plain convs with those factors folded in and still takes raw pixels."""
    train = create_model(name)
    first, last = train.get_layer("conv1"), train.get_layer(LAST_CONV[name])
    x = np.random.default_rng(1).integers(0, 256, (1, 13, 17, 3)).astype(np.float32)
    probe = keras.Model(train.input, [first.output, last.input, last.output])
    first_out, last_in, last_out = (t.numpy() for t in probe(x))
    np.testing.assert_allclose(first_out, np.maximum(conv_reference(x / 255, *first.get_weights()),
                                                     0), rtol=1e-5, atol=1e-6)
    assert 0.05 < np.sqrt(np.mean(first_out ** 2)) < 5  # features on the [0, 1] scale
    in_scale = np.ones(last_in.shape[-1], np.float32)
    if name == "scsrn":
        in_scale[:3] = 1 / 255
    np.testing.assert_allclose(last_out, 255 * conv_reference(last_in * in_scale,
                                                              *last.get_weights()),
                               rtol=1e-4, atol=1e-3)
    deploy = collapse(train)
    assert not any(isinstance(layer, ScaledConv2D) for layer in deploy.layers)
    np.testing.assert_allclose(deploy.get_layer("conv1").kernel.numpy(),
                               first.kernel.numpy() / 255, rtol=1e-6)


@pytest.mark.parametrize("name", ANCHORED)
def test_fresh_training_graph_starts_near_nearest_neighbour_upscaling(name, set5):
    keras.utils.set_random_seed(0)
    model = create_model(name)
    lr = set5[0].lr[None, :48, :48].astype(np.float32)
    residual = model(lr).numpy() - nearest_upscale(lr)
    # A few grey levels (measured 0.5-6): the small last conv (SCSRN: the nearest-conv kernel
    # on its image inputs) adds little to the anchor. On raw pixels with Keras' default
    # initial weights, SCSRN (no explicit anchor) started 130-145 levels away.
    assert np.sqrt(np.mean(residual ** 2)) < 12


def test_weight_clip_on_the_training_graph_clips_the_deploy_kernel_alike():
    """Z6 weight clipping (per output channel, mean +- k std) is scale-invariant, so clipping
    the [0, 1]-domain first conv equals clipping the deploy graph's raw-pixel conv1."""
    train = create_model("xcat")
    kernel = train.get_layer("conv1").kernel
    kernel.assign(np.random.default_rng(2).standard_t(2, kernel.shape).astype(np.float32))
    deploy_kernel = collapse(train).get_layer("conv1").kernel.numpy()
    expected = clip_kernel(deploy_kernel).numpy()
    assert not np.allclose(expected, deploy_kernel)  # heavy tails: the clip bites
    apply_weight_clip(train)
    np.testing.assert_allclose(collapse(train).get_layer("conv1").kernel.numpy(), expected,
                               rtol=1e-5, atol=1e-9)


@pytest.mark.slow
def test_abpn_seed_0_trains_its_conv_branch_from_raw_pixels(set5):
    """60 Adam steps at 1e-3, no warm-up, on 24x24 LR patches of Set5: the conv branch must
    add a real residual to the anchor and beat the anchor alone. On raw pixels (the graph
    before the [0, 1] domain) the residual fell to ~0.02 grey levels and the loss stayed at
    the anchor's."""
    probe_lr, probe_hr = (t.numpy() for t in
                          next(iter(make_train_dataset(set5, patch=24, batch=32, seed=99))))
    anchor = nearest_upscale(probe_lr)
    anchor_l1 = np.mean(np.abs(anchor - probe_hr))
    keras.utils.set_random_seed(0)
    model = create_model("abpn")
    optimizer = keras.optimizers.Adam(1e-3)

    @tf.function
    def step(lr, hr):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(model(lr, training=True) - hr)) / 255
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    for lr, hr in make_train_dataset(set5, patch=24, batch=8, seed=0).take(60):
        step(lr, hr)
    sr = model(probe_lr).numpy()
    assert np.sqrt(np.mean((sr - anchor) ** 2)) > 2.0  # grey levels: the branch is alive
    assert np.mean(np.abs(sr - probe_hr)) < 0.97 * anchor_l1
