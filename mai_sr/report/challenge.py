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

# The predicate lives beside the challenge's setting (TF-free, read by `mai-sr score` too);
# re-exported here for the report.
from mai_sr.challenge import (CHALLENGE_INPUT_HW, CHALLENGE_LR_HW, CHALLENGE_RUNTIME,  # noqa: F401
                              CHALLENGE_SCALE, CHALLENGE_TEST_SET, caveat_label,
                              is_challenge_score, score_caveats)

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
