"""Warm starts: a larger registered network set to compute a smaller published one, so the
published weights start it (SCSRN from ABPN-M4C28's DIV2K weights). Checked against the
ABPN imported from the real checkpoints (which the torch tests check against the authors'
PyTorch definitions), on real images; then through ``train --init`` into SCSRN's training
graph (re-parameterizable blocks), which must still compute the same network.
"""

from __future__ import annotations


import numpy as np
import pytest

from conftest import zoo_checkpoint
from mai_sr import registry
from mai_sr.errors import MaiSrError



def test_a_model_names_the_networks_it_computes():
    assert registry.computes_from("scsrn") == ("abpn",)
    assert registry.computes_from("ecbsr_m4c16_relu_pair") == ("ecbsr",)
    for name in ("abpn", "abpn_m6c40", "etds_l", "xcat", "ncnet"):
        assert registry.computes_from(name) == ()


def real_lr(shared_data, scale: int) -> np.ndarray:
    from mai_sr.data import iter_pairs

    return next(iter(iter_pairs(shared_data / "Set14", scale=scale))).lr[None].astype(np.float32)


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("scale", [2, 3])
def test_abpn_weights_import_into_scsrn_as_the_same_network(tmp_path, shared_data, scale):
    from mai_sr.importer import import_weights
    from mai_sr.runs import load_deploy_weights

    source = zoo_checkpoint(f"ABPN_M4C28_x{scale}")
    nets = []
    for model in (None, "scsrn"):
        out = tmp_path / f"{model}.weights.h5"
        result = import_weights(source, model, out)
        nets.append(load_deploy_weights(out, result.model, result.scale))
    assert (result.model, result.scale) == ("scsrn", scale)
    assert any("embedded in scsrn, computing abpn's network" in note for note in result.notes)
    lr = real_lr(shared_data, scale)
    abpn, scsrn = (np.asarray(net(lr)) for net in nets)
    assert abpn.std() > 10  # a real image, not a constant
    assert np.abs(abpn - scsrn).max() <= 1e-4 * 255
    # the channels ABPN lacks are alive (copies), and nothing reads them yet
    conv1 = nets[1].get_layer("conv1").get_weights()[0]
    np.testing.assert_array_equal(conv1[..., 28:], conv1[..., :4])
    assert not nets[1].get_layer("block1").get_weights()[0][:, :, 28:].any()


@pytest.mark.tf
def test_a_checkpoint_scsrn_cannot_start_from_gives_one_line(tmp_path):
    from mai_sr.importer import import_weights

    out = tmp_path / "w.weights.h5"
    with pytest.raises(MaiSrError, match=r"holds ABPN M6C40 .*; --model scsrn starts only "
                                         r"from abpn$"):
        import_weights(zoo_checkpoint("ABPN_M6C40_x3"), "scsrn", out)
    # at x4 ABPN's ReLU conv to 3s^2 = 48 channels is wider than SCSRN's 32-channel block
    with pytest.raises(MaiSrError, match=r"^abpn \(28 -> 28 -> 28 -> 28 -> 28 -> 48 -> 48\) "
                                         r"does not fit in scsrn's convs \(32 -> 32 -> 32 -> "
                                         r"32 -> 32 -> 32 -> 48\)$"):
        import_weights(zoo_checkpoint("ABPN_M4C28_x4"), "scsrn", out)
    assert not list(tmp_path.iterdir())


@pytest.mark.tf
def test_embed_refuses_a_network_that_does_not_fit():
    from mai_sr.models import create_model, relayout, scsrn

    wide = create_model("abpn_m6c40", deploy=True)  # 40 channels, 9 convs
    with pytest.raises(MaiSrError, match="does not fit in scsrn"):
        scsrn.embed(wide, create_model("scsrn", deploy=True))
    with pytest.raises(MaiSrError, match="model scsrn does not compute ecbsr"):
        relayout(create_model("ecbsr", deploy=True), "scsrn", 3, [], source="ecbsr")


@pytest.mark.tf
@pytest.mark.slow
def test_init_starts_scsrns_training_graph_at_the_abpn_network(tmp_path, shared_data):
    from mai_sr.importer import import_weights
    from mai_sr.models import collapse, create_model
    from mai_sr.runs import init_training_graph, load_deploy_weights
    from mai_sr.train.config import TrainConfig

    weights = tmp_path / "scsrn.weights.h5"
    import_weights(zoo_checkpoint("ABPN_M4C28_x3"), "scsrn", weights)
    train_net = create_model("scsrn", scale=3)  # RepConv blocks, [0, 1] units
    init_training_graph(train_net, "scsrn", 3, weights)
    lr = real_lr(shared_data, 3)
    deploy = np.asarray(load_deploy_weights(weights, "scsrn", 3)(lr))
    assert np.abs(np.asarray(train_net(lr)) - deploy).max() <= 1e-3 * 255
    assert np.abs(np.asarray(collapse(train_net)(lr)) - deploy).max() <= 1e-3 * 255
    # Z6's first-layer clip would cut the imported kernels at step one: off unless asked for
    config = TrainConfig.from_cli({"init_run": str(weights)})
    assert config.model == "scsrn" and config.weight_clip is False
    assert TrainConfig.from_cli({"init_run": str(weights), "weight_clip": True}).weight_clip
