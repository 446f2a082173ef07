"""The layout option ``tanh_copies`` of ESPCN: on top of its tanh groups, each group's conv
writes its channels k times, each through the group's tanh, and the next conv reads each copy
with 1/k of the weight. Quantization moves the copies to centred fractions of their int8
input step (``dither_activation_copies``). Checked on the real checkpoint: the import computes
the published network (tests/test_layout_imports.py), the dither moves each copy by its share
of the step the range fit picks, leaves the kernels and that fit alone, and moves the float
network by far less than one int8 step of its output.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import zoo_checkpoint
from mai_sr import registry
from mai_sr.errors import MaiSrError

OPTION = "espcn_tanh_copies"


def test_the_option_names_espcn_as_the_network_it_computes():
    assert registry.published_layout(OPTION) == "espcn"


@pytest.mark.tf
def test_a_count_below_one_is_refused():
    from mai_sr.models import create_model

    with pytest.raises(MaiSrError, match="tanh_copies"):
        create_model("espcn", deploy=True, tanh_groups=(4, 2), tanh_copies=(0, 1))


@pytest.mark.tf
@pytest.mark.slow
def test_the_dither_centres_each_groups_copies_on_its_fitted_step(tmp_path, shared_data):
    from mai_sr.data import iter_pairs
    from mai_sr.importer import import_weights
    from mai_sr.models.qat.quantize import (_fitted_bounds, dither_activation_copies,
                                            plan_quantization)
    from mai_sr.runs import load_deploy_weights

    weights = tmp_path / "copies.weights.h5"
    import_weights(zoo_checkpoint("ESPCN_x3"), OPTION, weights)
    net = load_deploy_weights(weights, OPTION, 3)
    copies = dict(zip((1, 2), registry.SIZES[OPTION]["tanh_copies"]))
    lrs = [p.lr[:40, :40] for p in list(iter_pairs(shared_data / "Set14", scale=3))[:4]]
    batches = [np.stack([lr.astype(np.float32) for lr in lrs])]
    x = batches[0]
    before_out = np.asarray(net(x))
    before = {layer.name: [w.copy() for w in layer.get_weights()]
              for layer in net.layers if layer.weights}
    bounds = _fitted_bounds(net, batches, plan_quantization(net))
    moved = dither_activation_copies(net, batches)
    assert moved == sum(net.get_layer(name).filters for name in bounds
                        if name.startswith(("conv1", "conv2")))
    for name, bound in bounds.items():
        kernel, bias = net.get_layer(name).get_weights()
        assert np.array_equal(kernel, before[name][0])
        shift = (bias - before[name][1]) / (2 * bound / 255)
        if name == "conv3":  # the sigmoid's input has no copies
            assert not shift.any()
            continue
        k = copies[int(name[4])]
        expected = np.repeat((np.arange(k) + 0.5) / k - 0.5, kernel.shape[-1] // k)
        np.testing.assert_allclose(shift, expected, atol=1e-4)
    # the fit sees the dithered values and keeps its bounds; the output barely moves
    assert _fitted_bounds(net, batches, plan_quantization(net)) == bounds
    assert 0 < np.abs(np.asarray(net(x)) - before_out).max() < 0.05
