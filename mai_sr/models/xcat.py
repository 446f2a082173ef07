"""XCAT (team Aselsan Research, Ayazoglu & Bilecen, ECCVW 2022; MAI 2022 report, sec. 4.17).

No code was published; this is our reading of the report and the paper's abstract:

- Heterogeneous group-convolution blocks (HXBlocks, inspired by XLSR's GConv blocks): the
  input channels are split *unequally* and each group has its own kernel size. We split 24
  channels as (22, 3x3) and (2, 1x1); each group keeps its width.
- Cross concatenation: each block's output is circularly shifted along channels (by 2
  here, the smallest group), so the next block's groups see channels of different groups;
  it replaces XLSR's 1x1 mixing convs.
- Nearest-neighbour anchor as a fixed, untrainable 1x1 conv 3 -> 27 added before
  depth-to-space; a clipped ReLU at the end, which is exactly a clip to [0, 255]; we put it
  before depth-to-space like the other models.
- Layout: conv 3x3 3 -> 24 (ReLU), three HXBlocks (ReLU), conv 3x3 24 -> 27 (linear),
  + anchor, clip, depth_to_space(3).
- Deploy graph: each HXBlock becomes one dense 3x3 Conv2D with a block-diagonal kernel whose
  output channels are pre-rolled (:meth:`~mai_sr.models.blocks.HXBlock.collapse`, exact).
  Slicing channels per group would need SPLIT/STRIDED_SLICE and the shift a ROLL or
  GATHER, which NPUs run poorly or not at all, and TFLite's grouped CONV_2D needs equal
  groups and is badly supported by NNAPI drivers. The price: the dense kernels store and
  multiply the zeros. We chose the width (24) so the *deploy* INT8 file is near the
  published 30 KB (Table 1: 29.67 dB, 30.2 ms). QAT on the deploy graph may move the zeros;
  that changes nothing at runtime.
- The split: the deploy cost is set by the width alone, so the groups decide only how much
  of each dense 5,208-parameter block is learnt (biases included). Measured with the same
  24,000 steps (B100 FP32 gain over bicubic, README "Pretrained models"): (12, 3x3) (8, 3x3)
  (4, 1x1) learns 1,912 per block, 12,267 in all: +1.08 dB; (20, 3x3) (4, 1x1) 3,640 per
  block, 17,451 in all: +1.15 dB; (22, 3x3) (2, 1x1) 4,384 per block, 19,683 in all:
  +1.18 dB. The published 30 KB file implies ~23k weights at our ABPN file's 1.33 bytes per
  weight, so the last is the closest to the original. A 32-channel (16, 12, 4) split did no
  better at equal steps and RepConv branches inside the groups added nothing.
- Training graph (``normalize=True``): [0, 1] domain as in ABPN (first conv input x 1/255,
  last conv output x 255, folded away by collapse()).
"""

from __future__ import annotations

from mai_sr._tf import keras
from mai_sr.models.blocks import (HXBlock, conv_block, first_conv_args, hidden_conv_args,
                                  last_conv_args, make_anchor, sr_head, sr_input,
                                  weight_constraint)

DEFAULTS = dict(groups=((22, 3), (2, 1)), shift=2, blocks=3, block="hx",
                anchor="nearest_conv", clip="before_d2s", normalize=True,
                max_abs_weight=None, input_size=None)
DEPLOY = dict(block="conv", normalize=False)

# Training defaults that differ from mai_sr.train.BASE_RECIPE: Aselsan's Charbonnier loss and
# x1/x0.7/x0.5 intensity augmentation (Ignatov et al., ECCV 2022 Workshops challenge report,
# 4.17).
RECIPE = {"loss": "charbonnier", "intensity_aug": True}


def build(scale: int = 3, *, groups, shift: int, blocks: int, block: str, anchor: str,
          clip: str, normalize: bool, max_abs_weight, input_size) -> keras.Model:
    """XCAT with ``DEFAULTS`` updated by the keyword arguments."""
    constraint = weight_constraint(max_abs_weight)
    channels = sum(c for c, _ in groups)
    inp = sr_input(input_size)
    x = conv_block("conv", channels, "conv1", "relu", constraint,
                   **first_conv_args(normalize))(inp)
    for i in range(blocks):
        name = f"hxblock{i + 1}"
        layer = (HXBlock(groups, shift, "relu", constraint, name=name) if block == "hx"
                 else conv_block(block, channels, name, "relu", constraint,
                                 **hidden_conv_args(normalize, block)))
        x = layer(x)
    x = conv_block("conv", 3 * scale * scale, "conv_out", None, constraint,
                   **last_conv_args(normalize))(x)
    x = keras.layers.Add(name="add_anchor")([x, make_anchor(anchor, inp, scale)])
    return keras.Model(inp, sr_head(x, scale, clip), name="xcat")
