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
