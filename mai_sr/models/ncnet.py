"""NCNet, the nearest convolution network (Luo et al., team MegSR, MAI 2022 report, sec. 4.10).

ABPN's body at 32 channels: seven 3x3 convs (3 -> 32, four 32 -> 32, 32 -> 27 with ReLU,
27 -> 27 linear) = 52,279 trainable parameters, plus the frozen nearest-convolution anchor
(a 1x1 conv 3 -> 27 without bias, 81 fixed weights: output channel k copies input channel
k % 3, TF's depth_to_space order). Published: 65 KB INT8, 29.94 dB, 29.8 ms on the VS680 NPU
(MAI 2022 challenge report, Table 1).

NCNet already uses the nearest-conv anchor when training, so its training and deploy graphs
have the same layers; the training graph's first and last convs work in the [0, 1] domain
(``normalize``, as in ABPN), which collapse() folds away. The clip sits before
depth-to-space (the MAI 2022 recipe).
"""

from __future__ import annotations

from mai_sr._tf import keras
from mai_sr.models.abpn import build_anchor_net

DEFAULTS = dict(channels=32, body=4, block="conv", anchor="nearest_conv", clip="before_d2s",
                normalize=True, max_abs_weight=None, input_size=None)
DEPLOY = dict(block="conv", normalize=False)

# Training defaults that differ from mai_sr.train.BASE_RECIPE: none (L1, 5% warm-up).
RECIPE: dict = {}


def build(scale: int = 3, **config) -> keras.Model:
    """NCNet with ``DEFAULTS`` updated by ``config``."""
    return build_anchor_net(name="ncnet", scale=scale, **config)
