"""The one list of model architectures: name -> the module that builds it.

TF-free on purpose: `--help`, argparse choices and the `.tflite`-only commands read the names
here without importing TensorFlow. :func:`model_module` imports a model's module (and so
TensorFlow) only when it is asked for, as :data:`mai_sr.device.RUNNERS` does for runners.
Adding a model is one file in ``mai_sr/models/`` plus one line here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from mai_sr.errors import MaiSrError

# name -> module defining build(scale, **config), DEFAULTS (the training graph), DEPLOY (what
# deploy=True changes) and RECIPE (training defaults that differ from mai_sr.train's). The
# published sizes of a family share its module, one line each, their options in SIZES.
MODELS: dict[str, str] = {
    "abpn": "mai_sr.models.abpn",
    "abpn_m6c40": "mai_sr.models.abpn",
    "ecbsr": "mai_sr.models.ecbsr",
    "ecbsr_m4c32": "mai_sr.models.ecbsr",
    "ecbsr_m6c40": "mai_sr.models.ecbsr",
    "ecbsr_m4c16_relu_pair": "mai_sr.models.ecbsr",
    "ecbsr_m4c32_relu_pair": "mai_sr.models.ecbsr",
    "ecbsr_m6c40_relu_pair": "mai_sr.models.ecbsr",
    "espcn": "mai_sr.models.espcn",
    "espcn_tanh_groups": "mai_sr.models.espcn",
    "espcn_tanh_copies": "mai_sr.models.espcn",
    "etds": "mai_sr.models.etds",
    "etds_l": "mai_sr.models.etds",
    "etds_m": "mai_sr.models.etds",
    "etds_s": "mai_sr.models.etds",
    "etds_image_pair": "mai_sr.models.etds",
    "etds_s_image_pair": "mai_sr.models.etds",
    "etds_m_image_pair": "mai_sr.models.etds",
    "etds_l_image_pair": "mai_sr.models.etds",
    "etds_l_image_quad": "mai_sr.models.etds",
    "fsrcnn": "mai_sr.models.fsrcnn",
    "fsrcnn_relu_pair": "mai_sr.models.fsrcnn",
    "fsrcnn_subpixel": "mai_sr.models.fsrcnn",
    "fsrcnn_relu_pair_subpixel": "mai_sr.models.fsrcnn",
    "fsrcnn_relu_pair_subpixel_copies": "mai_sr.models.fsrcnn",
    "ncnet": "mai_sr.models.ncnet",
    "scsrn": "mai_sr.models.scsrn",
    "xcat": "mai_sr.models.xcat",
}

# The options of each published size (over its module's DEFAULTS). Data, not code, so that
# `mai-sr import` places a checkpoint by its shapes before TensorFlow loads.
SIZES: dict[str, dict] = {
    # Du et al., "Anchor-based Plain Net for Mobile Image Super-Resolution", CVPRW 2021
    # (M4C28); Chao et al., "Equivalent Transformation and Dual Stream Network Construction
    # for Mobile Image Super-Resolution", CVPR 2023, Table 2 (M6C40)
    "abpn": {"body": 4, "channels": 28},
    "abpn_m6c40": {"body": 6, "channels": 40},
    # Zhang, Zeng and Zhang, "Edge-oriented Convolution Block for Real-time Super Resolution
    # on Mobile Devices", ACM MM 2021: M4C16, M4C32, M6C40
    "ecbsr": {"blocks": 4, "channels": 16},
    "ecbsr_m4c32": {"blocks": 4, "channels": 32},
    "ecbsr_m6c40": {"blocks": 6, "channels": 40},
    # FSRCNN and these three ECBSR with each PReLU written as two ReLUs (mai_sr.models.ecbsr)
    "fsrcnn_relu_pair": {"activation": "relu_pair"},
    # ESPCN with each tanh layer's channels in groups of like range (mai_sr.models.espcn)
    "espcn_tanh_groups": {"tanh_groups": [4, 2]},
    # ... and each group's channels written twice, for quantization to dither
    "espcn_tanh_copies": {"tanh_groups": [4, 2], "tanh_copies": [2, 2]},
    # FSRCNN's transposed conv as a conv and depth-to-space (mai_sr.models.fsrcnn)
    "fsrcnn_subpixel": {"upsample": "subpixel"},
    "fsrcnn_relu_pair_subpixel": {"activation": "relu_pair", "upsample": "subpixel"},
    # the same with every hidden ReLU tensor written twice, for quantization to dither
    "fsrcnn_relu_pair_subpixel_copies": {"activation": "relu_pair", "upsample": "subpixel",
                                         "copies": [2] * 7},
    "ecbsr_m4c16_relu_pair": {"blocks": 4, "channels": 16, "activation": "relu_pair"},
    "ecbsr_m4c32_relu_pair": {"blocks": 4, "channels": 32, "activation": "relu_pair"},
    "ecbsr_m6c40_relu_pair": {"blocks": 6, "channels": 40, "activation": "relu_pair"},
    # Chao et al., CVPR 2023, Table 2: ETDS-T, -S, -M, -L
    "etds": {"blocks": 5, "channels": 16},
    "etds_s": {"blocks": 4, "channels": 32},
    "etds_m": {"blocks": 6, "channels": 32},
    "etds_l": {"blocks": 7, "channels": 48},
    # these four with the image path carried twice, green three times (mai_sr.models.etds)
    "etds_image_pair": {"blocks": 5, "channels": 16, "image_extra": 4},
    "etds_s_image_pair": {"blocks": 4, "channels": 32, "image_extra": 4},
    "etds_m_image_pair": {"blocks": 6, "channels": 32, "image_extra": 4},
    "etds_l_image_pair": {"blocks": 7, "channels": 48, "image_extra": 4},
    # ETDS-L with its image path carried four times, blue three times: eight copies, so
    # the width stays a multiple of 4 (56); chosen over four copies on held-out images
    "etds_l_image_quad": {"blocks": 7, "channels": 48, "image_extra": 8},
}

# Options that change how a network is laid out, not what it computes: a name whose SIZES
# differ from another name's of the same module only in these keys is that network in another
# layout, made from its weights by the module's ``relayout(source, target, images)`` (the
# check images: ESPCN's groups are sorted by range on them; the other rewrites need none).
LAYOUT_OPTIONS = ("activation", "image_extra", "upsample", "tanh_groups", "tanh_copies",
                  "copies")

# Published networks another registered model can compute exactly (a larger net set to a
# smaller one's function), so their weights start it: ``mai-sr import ABPN.pth --model scsrn``
# embeds the checkpoint by the module's ``embed(source, target)``, to fine-tune from there.
WARM_STARTS = {"scsrn": ("abpn",)}

# Upscaling factors every registered model builds, trains and exports at.
SCALES = (2, 3, 4)


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(MODELS)


def check_model_name(name: str) -> str:
    """`name`, or a one-line MaiSrError listing the registered names."""
    if name not in MODELS:
        raise MaiSrError(f"unknown model {name!r}; choose from {', '.join(list_models())}")
    return name


def check_scale(scale: int) -> int:
    """`scale`, or a one-line MaiSrError listing :data:`SCALES`."""
    if scale not in SCALES:
        raise MaiSrError(f"scale {scale!r} is not one of {', '.join(map(str, SCALES))}")
    return scale


def published_layout(name: str) -> str | None:
    """The registered name whose network `name` computes in another layout (see
    :data:`LAYOUT_OPTIONS`), or None when `name` is a published layout itself."""
    size = SIZES.get(check_model_name(name), {})
    if not any(key in size for key in LAYOUT_OPTIONS):
        return None
    plain = {k: v for k, v in size.items() if k not in LAYOUT_OPTIONS}
    return next((other for other in list_models() if other != name
                 and MODELS[other] == MODELS[name] and SIZES.get(other, {}) == plain), None)


def computes_from(name: str) -> tuple[str, ...]:
    """The registered names whose networks `name` can compute exactly: its published layout
    (a layout option) or the published networks that start it (:data:`WARM_STARTS`)."""
    layout = published_layout(name)
    return (layout,) if layout is not None else WARM_STARTS.get(name, ())


def model_module(name: str) -> ModuleType:
    """The module of model `name` (imports TensorFlow)."""
    return importlib.import_module(MODELS[check_model_name(name)])
