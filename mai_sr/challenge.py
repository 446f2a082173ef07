"""The challenge's fixed setting, and the input each scale is timed at.

Mobile AI 2022 quantized SR (Ignatov et al., "Efficient and Accurate Quantized Image
Super-Resolution on Mobile NPUs, Mobile AI & AIM 2022 Challenge: Report", ECCV 2022
Workshops): x3, runtime measured on a 640x360 LR input (1920x1080 output). The score
(:mod:`mai_sr.score`) is defined for that setting only; other scales and sizes still rank,
labelled "not a challenge score" (:func:`score_caveats`, the one predicate the report and
`mai-sr score` share).

TF-free: the CLI's defaults and the report read it without importing TensorFlow.
"""

from __future__ import annotations

from mai_sr.errors import MaiSrError

CHALLENGE_SCALE = 3
CHALLENGE_LR_HW = (360, 640)  # LR height x width the challenge's runtime is measured on

# Section 2 of the challenge report: PSNR on its DIV2K test images, runtime measured on the
# Synaptics VS680 board's NPU.
CHALLENGE_INPUT_HW = CHALLENGE_LR_HW
CHALLENGE_TEST_SET = "DIV2K test"
CHALLENGE_RUNTIME = "Synaptics VS680 NPU"

# The shipped models in mai_sr/pretrained were trained for the challenge, so they are x3.
PRETRAINED_SCALE = CHALLENGE_SCALE

# Efficiency profile of x4 models: FLOPs and activations "on an LR image of size 256x256"
# (Zhang et al., "AIM 2020 Challenge on Efficient Super-Resolution: Methods and Results",
# ECCV 2020 Workshops; Li et al., "NTIRE 2023 Challenge on Efficient Super-Resolution:
# Methods and Results", CVPR 2023 Workshops).
EFFICIENT_SR_X4_LR_HW = (256, 256)

# The fixed input a model of each scale is exported and timed at. x3 is the challenge's;
# x4 follows the efficient-SR reports above, so its profile compares with their tables; x2
# has no efficiency-challenge convention, so it keeps the challenge's 1920x1080 output
# (960x540 LR), the display size a phone upscales to.
TIMING_LR_HW = {2: (540, 960), CHALLENGE_SCALE: CHALLENGE_LR_HW, 4: EFFICIENT_SR_X4_LR_HW}


def timing_input(scale: int) -> tuple[int, int]:
    """The LR (height, width) a model of `scale` is exported and timed at by default."""
    try:
        return TIMING_LR_HW[scale]
    except KeyError:
        raise MaiSrError(f"scale {scale!r}: no timing input defined (scales: "
                         f"{', '.join(map(str, sorted(TIMING_LR_HW)))})") from None


def graph_timing_input(graph) -> tuple[int, int]:
    """The LR (height, width) a dynamic-shape graph is timed and profiled at: its scale's
    :func:`timing_input`, the scale read from the graph (output height / input height at the
    challenge's input). A scale without a timing input gets the challenge's."""
    out = graph.shapes(CHALLENGE_LR_HW)[graph.outputs[0]]
    scale = out[1] // CHALLENGE_LR_HW[0]
    return TIMING_LR_HW.get(scale, CHALLENGE_LR_HW)


def score_caveats(*, scale: int | None, input_hw, dataset: str | None,
                  runtime_source: str | None) -> list[str]:
    """Short reasons why a score is not a challenge score; empty when it is one.

    scale: the model's upscaling factor; input_hw: (h, w) of the timed LR input;
    dataset: the data set the PSNR is on; runtime_source: where the runtime comes from
    (:data:`CHALLENGE_RUNTIME` for the challenge's board, else e.g. "synap (simulated)").
    """
    reasons = []
    if dataset != CHALLENGE_TEST_SET:
        reasons.append(f"PSNR on {dataset or 'unknown data'}")
    if scale != CHALLENGE_SCALE:
        reasons.append(f"x{scale}" if scale else "unknown scale")
    if input_hw is None or tuple(input_hw) != CHALLENGE_INPUT_HW:
        reasons.append(f"{'x'.join(map(str, input_hw))} input" if input_hw else
                       "unknown input size")
    if runtime_source != CHALLENGE_RUNTIME:
        reasons.append(f"{runtime_source} time" if runtime_source else "no NPU time")
    return reasons


def is_challenge_score(*, scale, input_hw, dataset, runtime_source) -> bool:
    """True when a score was computed as the challenge computed its scores."""
    return not score_caveats(scale=scale, input_hw=input_hw, dataset=dataset,
                             runtime_source=runtime_source)


def caveat_label(caveats: list[str]) -> str:
    """The words printed next to a score: '' for a challenge score."""
    return f"not a challenge score: {', '.join(caveats)}" if caveats else ""
