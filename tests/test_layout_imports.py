"""Every layout option a published checkpoint imports into (``mai-sr import --model OPTION``)
computes the published network: imported as placed and as the option, the two deploy nets
agree on a real Set14 image to 1e-4 of the pixel range, and the option's import says which
layout it is. The published layouts are checked against the authors' PyTorch definitions by
the torch tests; each option's own tests check what the layout is for.
"""

from __future__ import annotations

import pytest

from conftest import import_in_both_layouts, zoo_checkpoint


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("name, model", [
    # each PReLU as two ReLUs (tests/test_relu_pair.py)
    ("ECBSR_M4C16_x2", "ecbsr_m4c16_relu_pair"), ("ECBSR_M6C40_x4", "ecbsr_m6c40_relu_pair"),
    ("FSRCNN_x3", "fsrcnn_relu_pair"),
    # FSRCNN's transposed conv as a conv and depth-to-space (tests/test_fsrcnn_subpixel.py)
    ("FSRCNN_x2", "fsrcnn_subpixel"), ("FSRCNN_x3", "fsrcnn_relu_pair_subpixel"),
    ("FSRCNN_x4", "fsrcnn_relu_pair_subpixel"),
    # ... with every hidden tensor written twice (tests/test_fsrcnn_copies.py)
    ("FSRCNN_x3", "fsrcnn_relu_pair_subpixel_copies"),
    # ESPCN's tanh layers in groups (tests/test_espcn_tanh_groups.py)
    ("ESPCN_x2", "espcn_tanh_groups"), ("ESPCN_x3", "espcn_tanh_groups"),
    ("ESPCN_x4", "espcn_tanh_groups"),
    # ... with each group's channels twice (tests/test_espcn_tanh_copies.py)
    ("ESPCN_x3", "espcn_tanh_copies")])
def test_a_checkpoint_imports_into_the_option_as_the_same_network(tmp_path, shared_data, name,
                                                                  model):
    import_in_both_layouts(zoo_checkpoint(name), model, tmp_path, shared_data)
