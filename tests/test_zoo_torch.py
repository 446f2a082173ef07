"""Every imported zoo model equals the authors' PyTorch reference model on a real image.

The reference definitions are the authors' own (../shared/artifacts/etds_zoo/reference/archs,
loaded by path with importlib, never copied); torch comes from the ``[torch]`` test extra.
One checkpoint per family and scale, plus the ET forms at x3; ``benchmarks/zoo_import.py``
compares all 48.
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

from conftest import SHARED_ARTIFACTS

REFERENCE = SHARED_ARTIFACTS / "etds_zoo" / "reference" / "archs"
PRETRAINED = SHARED_ARTIFACTS / "etds_zoo" / "pretrained"
RELATIVE_TOLERANCE = 1e-4

torch = pytest.importorskip("torch", reason="torch not installed (pip install .[torch]): the "
                                            "comparison with the reference PyTorch models is "
                                            "skipped")
if not REFERENCE.is_dir() or not PRETRAINED.is_dir():
    pytest.skip(f"{REFERENCE.parent} not present: the authors' reference definitions are needed",
                allow_module_level=True)

pytestmark = [pytest.mark.tf]

CHECKPOINTS = [f"{stem}_x{s}" for stem in ("ESPCN", "FSRCNN", "ECBSR_M4C16", "ABPN_M4C28",
                                           "ETDS_M5C16") for s in (2, 3, 4)]
CHECKPOINTS += ["ABPN_ET_M6C40_x3", "ECBSR_ET_M4C32_x3", "ETDS_M7C48_x3"]


def reference_archs(family: str):
    path = REFERENCE / f"{family}_arch.py"
    spec = importlib.util.spec_from_file_location(f"reference_{family}_arch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_model(name: str, state: dict):
    """The authors' class and hyper-parameters for checkpoint `name` (their test configs)."""
    family, scale = name.split("_")[0], int(name.rsplit("_x", 1)[1])
    size = re.search(r"M(\d+)C(\d+)", name)
    archs = reference_archs(family)
    et = "_ET_" in name
    if family == "ESPCN":
        model = archs.ESPCN(colors=3, upscale=scale)
    elif family == "FSRCNN":
        model = archs.FSRCNN(upscale=scale)
    elif family == "ABPN":
        model = (archs.ABPN_ET if et else archs.ABPN)(
            num_feat=int(size.group(2)), num_block=int(size.group(1)), scale=scale)
    elif family == "ECBSR":
        model = (archs.ECBSRET if et else archs.ECBSRT)(
            num_in_ch=3, num_out_ch=3, upscale=scale, num_block=int(size.group(1)),
            num_feat=int(size.group(2)), act_type="prelu")
    else:
        model = archs.ETDSForInference(num_in_ch=3, num_out_ch=3, upscale=scale,
                                       num_block=int(size.group(1)),
                                       num_feat=int(size.group(2)), num_residual_feat=3)
    model.load_state_dict(state)
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("name", CHECKPOINTS)
def test_imported_model_equals_the_reference_pytorch_model(name, shared_data):
    """Weights placed exactly as ``mai-sr import`` places them (:mod:`mai_sr.importer.zoo`,
    the gate's choice: CRD order, [0, 1] range), outputs compared in [0, 1] units, the
    reference's clipped as every evaluation clips it."""
    from mai_sr.data import iter_pairs
    from mai_sr.importer.torch_checkpoint import read_state_dict
    from mai_sr.importer.zoo import recognise
    from mai_sr.models import create_model

    path = next(PRETRAINED.glob(f"*/{name}.pth"))
    scale = int(name.rsplit("_x", 1)[1])
    tensors, _ = read_state_dict(path)
    placed = recognise(tensors)
    ours = create_model(placed.model, scale=scale, deploy=True)
    for layer, weights in placed.convert(scale, "crd", 1.0).items():
        ours.get_layer(layer).set_weights(weights)
    reference = reference_model(name, torch.load(str(path), map_location="cpu",
                                                 weights_only=True))
    lr = next(iter(iter_pairs(shared_data / "Set14", scale=scale))).lr[:90, :110]
    lr = lr[None].astype(np.float32)
    with torch.no_grad():
        theirs = reference(torch.from_numpy(lr / 255.0).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    theirs = np.clip(theirs.numpy(), 0.0, 1.0)
    got = np.asarray(ours(lr)) / 255.0
    assert got.shape == theirs.shape
    assert np.abs(got - theirs).max() <= RELATIVE_TOLERANCE * np.abs(theirs).max()
    assert np.mean((theirs > 0.02) & (theirs < 0.98)) > 0.5  # compared where not clipped


@pytest.mark.parametrize("name", ["ETDS_M5C16_x3", "ETDS_M7C48_x2"])
def test_an_etds_training_checkpoint_imports_as_its_equivalent_transformation(
        name, shared_data, tmp_path):
    """The authors' dual-stream training form (``ETDS``, before their converter) is placed
    without --model and merged by mai-sr's own equivalent transformation; the result equals
    the reference training model. Every weight is moved off the paper's initialisation
    (identity residual stream, zero cross-stream convs), so each block is checked."""
    from mai_sr.data import iter_pairs
    from mai_sr.importer.torch_checkpoint import read_state_dict
    from mai_sr.importer.zoo import recognise
    from mai_sr.models import create_model

    scale = int(name.rsplit("_x", 1)[1])
    blocks, width = (int(v) for v in re.search(r"M(\d+)C(\d+)", name).groups())
    torch.manual_seed(0)
    reference = reference_archs("ETDS").ETDS(num_in_ch=3, num_out_ch=3, upscale=scale,
                                             num_block=blocks, num_feat=width,
                                             num_residual_feat=3)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
        reference.conv_last.weight.mul_(0.1)  # keep most outputs inside [0, 1]
    path = tmp_path / f"{name}_training.pth"
    torch.save(reference.state_dict(), str(path))
    tensors, _ = read_state_dict(path)
    placed = recognise(tensors)
    assert placed is not None and "dual-stream" in placed.architecture
    assert placed.model == {"ETDS_M5C16_x3": "etds", "ETDS_M7C48_x2": "etds_l"}[name]
    assert placed.scales == (scale,)
    ours = create_model(placed.model, scale=scale, deploy=True)
    for layer, weights in placed.convert(scale, "crd", 1.0).items():
        ours.get_layer(layer).set_weights(weights)
    lr = next(iter(iter_pairs(shared_data / "Set14", scale=scale))).lr[:90, :110]
    lr = lr[None].astype(np.float32)
    with torch.no_grad():
        theirs = reference.eval()(torch.from_numpy(lr / 255.0).permute(0, 3, 1, 2))[0]
    theirs = np.clip(theirs.permute(0, 2, 3, 1).numpy(), 0.0, 1.0)
    got = np.asarray(ours(lr)) / 255.0
    assert got.shape == theirs.shape
    assert np.abs(got - theirs).max() <= RELATIVE_TOLERANCE * np.abs(theirs).max()
    assert np.mean((theirs > 0.02) & (theirs < 0.98)) > 0.5


def test_the_etds_training_graph_computes_the_papers_two_streams(shared_data):
    """mai-sr's ETDS training graph (one chain, the residual stream's block kept by
    DualStreamKernel), after training steps that move every weight, equals the authors'
    two-stream training model (``ETDS``) holding its weights split back into the streams:
    feature rows = backbone conv + residual-to-backbone conv, residual rows = residual
    conv, last conv = minus (backbone last conv + residual last conv)."""
    from mai_sr._tf import keras
    from mai_sr.data import iter_pairs
    from mai_sr.importer.zoo import crd_to_dcr
    from mai_sr.models import create_model

    scale, blocks, width, residual = 3, 5, 16, 3
    features = width - residual
    keras.utils.set_random_seed(0)
    ours = create_model("etds", scale=scale)
    lr = next(iter(iter_pairs(shared_data / "Set14", scale=scale))).lr[:48, :60]
    lr = lr[None].astype(np.float32)
    target = np.repeat(np.repeat(lr, scale, 1), scale, 2)
    target = target + np.random.default_rng(0).normal(0, 8, target.shape).astype(np.float32)
    ours.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    ours.fit(lr, target, epochs=8, verbose=0)
    # in the graph's [0, 1] units: the first conv's 1/255 and the clip's 255 are not stored
    trained = {layer.name: layer.get_weights() for layer in ours.layers if layer.weights}

    def oihw(kernel_hwio):
        return torch.from_numpy(np.ascontiguousarray(np.transpose(kernel_hwio, (3, 2, 0, 1))))

    def vector(bias):
        return torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32))

    crd = np.empty(3 * scale * scale, int)
    crd[crd_to_dcr(scale)] = np.arange(3 * scale * scale)  # our DCR channel of CRD channel j
    state = {}
    kernel, bias = trained["conv1"]
    state["conv_first.weight"], state["conv_first.bias"] = oihw(kernel[..., :features]), \
        vector(bias[:features])
    state["conv_residual_first.weight"] = oihw(kernel[..., features:])
    state["conv_residual_first.bias"] = vector(bias[features:])
    for i in range(blocks):
        kernel, bias = trained[f"conv{i + 2}"]
        assert not kernel[:, :, :features, features:].any()  # the residual stream reads itself
        state[f"backbone_convs.{i}.weight"] = oihw(kernel[:, :, :features, :features])
        state[f"backbone_convs.{i}.bias"] = vector(bias[:features])
        state[f"add_residual_convs.{i}.weight"] = oihw(kernel[:, :, features:, :features])
        state[f"add_residual_convs.{i}.bias"] = vector(np.zeros(features))
        state[f"residual_convs.{i}.weight"] = oihw(kernel[:, :, features:, features:])
        state[f"residual_convs.{i}.bias"] = vector(bias[features:])
    kernel, bias = trained[f"conv{blocks + 2}"]
    kernel, bias = -kernel[..., crd], 1 - bias[crd]  # ReLU(1 - y) -> y
    state["conv_last.weight"] = oihw(kernel[:, :, :features])
    state["conv_last.bias"] = vector(bias)
    state["conv_residual_last.weight"] = oihw(kernel[:, :, features:])
    state["conv_residual_last.bias"] = vector(np.zeros_like(bias))
    reference = reference_archs("ETDS").ETDS(num_in_ch=3, num_out_ch=3, upscale=scale,
                                             num_block=blocks, num_feat=width,
                                             num_residual_feat=residual)
    reference.load_state_dict(state)
    with torch.no_grad():
        theirs = reference.eval()(torch.from_numpy(lr / 255.0).permute(0, 3, 1, 2))[0]
    theirs = np.clip(theirs.permute(0, 2, 3, 1).numpy(), 0.0, 1.0)
    got = np.asarray(ours(lr)) / 255.0
    assert np.abs(got - theirs).max() <= RELATIVE_TOLERANCE * np.abs(theirs).max()
    assert np.mean((theirs > 0.02) & (theirs < 0.98)) > 0.5
    clip_kernel, clip_bias = trained["conv_clip"]  # the fixed part, untrained
    np.testing.assert_array_equal(clip_kernel[0, 0, :27], -np.eye(27, dtype=np.float32))
    np.testing.assert_array_equal(clip_bias, np.ones(27, np.float32))
    for i in range(blocks):  # training moved the cross-stream and residual weights
        assert state[f"add_residual_convs.{i}.weight"].abs().max() > 1e-3


def random_reference_ecbsr(scale: int, blocks: int, width: int):
    """The authors' ECBSR training model with every trainable tensor random (not its fixed
    edge masks), the last block small enough to keep most outputs inside [0, 1]."""
    torch.manual_seed(0)
    reference = reference_archs("ECBSR").ECBSR(num_in_ch=3, num_out_ch=3, upscale=scale,
                                               num_block=blocks, num_feat=width,
                                               act_type="prelu")
    with torch.no_grad():
        for parameter in reference.parameters():
            if parameter.requires_grad:
                parameter.copy_(0.1 * torch.randn_like(parameter))
        for parameter in reference.backbone[-1].parameters():
            if parameter.requires_grad:
                parameter.mul_(0.3)
    return reference


def reference_output(reference, lr):
    """The reference model's output on uint8 `lr` (1, H, W, 3) in training mode (the
    branches, as the paper trains), in [0, 1], clipped as every evaluation clips it."""
    with torch.no_grad():
        theirs = reference.train()(torch.from_numpy(lr / 255.0).permute(0, 3, 1, 2))
    return np.clip(theirs.permute(0, 2, 3, 1).numpy(), 0.0, 1.0)


def assert_equals_reference(ours, reference, shared_data, scale: int):
    """Assert that `ours` (pixels) equals the reference training model on a real crop, where
    most of its output is not clipped; return (the crop, the reference's output)."""
    from mai_sr.data import iter_pairs

    lr = next(iter(iter_pairs(shared_data / "Set14", scale=scale))).lr[:40, :52]
    lr = lr[None].astype(np.float32)
    theirs = reference_output(reference, lr)
    got = np.asarray(ours(lr)) / 255.0
    assert np.abs(got - theirs).max() <= RELATIVE_TOLERANCE * np.abs(theirs).max()
    assert np.mean((theirs > 0.02) & (theirs < 0.98)) > 0.5
    return lr, theirs


@pytest.mark.parametrize("scale,blocks,width", [(3, 4, 16), (2, 4, 32)])
def test_an_ecbsr_training_checkpoint_imports_as_its_collapsed_blocks(scale, blocks, width,
                                                                      shared_data, tmp_path):
    """The authors' training form (an ECB per conv) is placed without --model and each
    block collapsed by the importer's own NumPy code; the deploy model equals the reference
    training model's branches."""
    from mai_sr.importer.torch_checkpoint import read_state_dict
    from mai_sr.importer.zoo import recognise
    from mai_sr.models import create_model

    reference = random_reference_ecbsr(scale, blocks, width)
    path = tmp_path / "ecbsr_training.pth"
    torch.save(reference.state_dict(), str(path))
    placed = recognise(read_state_dict(path)[0])
    assert placed is not None and "training form" in placed.architecture
    assert placed.model == {16: "ecbsr", 32: "ecbsr_m4c32"}[width]
    ours = create_model(placed.model, scale=scale, deploy=True)
    for layer, weights in placed.convert(scale, "crd", 1.0).items():
        ours.get_layer(layer).set_weights(weights)
    lr, theirs = assert_equals_reference(ours, reference, shared_data, scale)


def test_the_ecbsr_training_graph_computes_the_papers_edge_oriented_blocks(shared_data):
    """mai-sr's ECBSR training graph (EdgeOrientedBlock convs) holding the weights of the
    authors' ``ECBSR`` training model (random, every branch, scale and slope set) gives its
    output in training mode, the five branches summed, not their collapsed conv; and its
    collapse gives the same image."""
    from mai_sr._tf import keras
    from mai_sr.importer.zoo import crd_to_dcr
    from mai_sr.models import collapse, create_model
    from mai_sr.models.blocks import EDGE_MASKS

    scale, blocks, width = 3, 4, 16
    reference = random_reference_ecbsr(scale, blocks, width)
    keras.utils.set_random_seed(0)
    ours = create_model("ecbsr", scale=scale)
    dcr = crd_to_dcr(scale)

    def hwio(weight, out=None):
        kernel = weight.detach().numpy().transpose(2, 3, 1, 0)
        return kernel if out is None else kernel[..., out]

    def vec(value, out=None):
        value = value.detach().numpy().reshape(-1)
        return value if out is None else value[out]

    edges = {"sobel_x": "conv1x1_sbx", "sobel_y": "conv1x1_sby", "laplacian": "conv1x1_lpl"}
    for i, ecb in enumerate(reference.backbone):
        layer = ours.get_layer(f"conv{i + 1}")
        out = dcr if i == blocks + 1 else None  # the last block feeds PixelShuffle (CRD)
        layer.conv3.set_weights([hwio(ecb.conv3x3.weight, out), vec(ecb.conv3x3.bias, out)])
        seq = ecb.conv1x1_3x3
        layer.expand.set_weights([hwio(seq.k0), vec(seq.b0)])
        layer.expand_conv3.set_weights([hwio(seq.k1, out), vec(seq.b1, out)])
        for edge, key in edges.items():
            branch = getattr(ecb, key)
            assert np.array_equal(branch.mask.detach().numpy()[0, 0], EDGE_MASKS[edge])
            layer.edge_inputs[edge].set_weights([hwio(branch.k0, out), vec(branch.b0, out)])
            layer.edge_scales[edge].assign(vec(branch.scale, out))
            layer.edge_biases[edge].assign(vec(branch.bias, out))
        if i <= blocks:
            ours.get_layer(f"prelu{i + 1}").set_weights(
                [vec(ecb.act.weight).reshape(1, 1, -1)])
    lr, theirs = assert_equals_reference(ours, reference, shared_data, scale)
    deployed = np.asarray(collapse(ours)(lr)) / 255.0
    assert np.abs(deployed - theirs).max() <= RELATIVE_TOLERANCE * np.abs(theirs).max()
