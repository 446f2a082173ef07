"""Is a final score a challenge score? One predicate for every reason it may not be.

The Mobile AI 2022 quantized-SR challenge (A. Ignatov, R. Timofte et al., *Efficient and
Accurate Quantized Image Super-Resolution on Mobile NPUs, Mobile AI & AIM 2022 Challenge:
Report*, ECCV 2022 Workshops, https://arxiv.org/abs/2211.05910) scored x3 models on
640x360 inputs with PSNR on its DIV2K test images and runtime measured on the Synaptics VS680
NPU. ``2^(2*PSNR) / (C * runtime)`` computed from anything else (another data set, scale or
input size, a simulated or other device's runtime) ranks models within one report, but is
not comparable with the published scores. :func:`score_caveats` names what differs, and
the report prints those words in the score's own cell.
"""

from __future__ import annotations

from mai_sr.challenge import CHALLENGE_LR_HW, CHALLENGE_SCALE  # noqa: F401  (re-exported)

# Section 2 of the challenge report: x3 upscaling, 640x360 LR -> 1920x1080, DIV2K test set,
# runtime on the Synaptics VS680 board's NPU (scale and input size: mai_sr.challenge).
CHALLENGE_INPUT_HW = CHALLENGE_LR_HW
CHALLENGE_TEST_SET = "DIV2K test"
CHALLENGE_RUNTIME = "Synaptics VS680 NPU"

# (title, authors, venue, link) of the papers the report's columns come from.
REFERENCES = {
    "mai2022": ("Efficient and Accurate Quantized Image Super-Resolution on Mobile NPUs, "
                "Mobile AI & AIM 2022 Challenge: Report", "A. Ignatov, R. Timofte et al.",
                "ECCV 2022 Workshops", "https://arxiv.org/abs/2211.05910"),
    "aim2020": ("AIM 2020 Challenge on Efficient Super-Resolution: Methods and Results",
                "K. Zhang, M. Danelljan, Y. Li, R. Timofte et al.", "ECCV 2020 Workshops",
                "https://arxiv.org/abs/2009.06943"),
    "ntire2023": ("NTIRE 2023 Challenge on Efficient Super-Resolution: Methods and Results",
                  "Y. Li, Y. Zhang, R. Timofte, L. Van Gool et al.", "CVPR 2023 Workshops",
                  "https://openaccess.thecvf.com/content/CVPR2023W/NTIRE/papers/Li_NTIRE_2023_"
                  "Challenge_on_Efficient_Super-Resolution_Methods_and_Results_CVPRW_2023_"
                  "paper.pdf"),
}


def citation(key: str) -> str:
    """'Title', authors, venue (plain text, no link)."""
    title, authors, venue, _ = REFERENCES[key]
    return f"\u201c{title}\u201d, {authors}, {venue}"


TABLE1 = "Table 1 of the Mobile AI 2022 challenge report"  # short form, after a citation


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
