"""Published results of the Mobile AI 2022 real-time SR challenge (its report's Table 1).

Source: A. Ignatov, R. Timofte et al., "Efficient and Accurate Quantized Image Super-Resolution
on Mobile NPUs, Mobile AI & AIM 2022 Challenge: Report", ECCV 2022 Workshops, Table 1. PSNR/SSIM
on the challenge's test set for the INT8 models; runtimes for 640x360 -> 1920x1080 on the
Synaptics VS680 (CPU and NPU); the Final Score is ``2^(2*PSNR) / (C * npu_ms)`` (see
:mod:`mai_sr.score`).

Used by reports (to place our models beside the published ones) and by the SyNAP simulator's
calibration. ``architecture`` names the rows whose network this toolkit implements;
:data:`TIMED_FILES` names the published model files whose runtimes Table 1 gives.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

REPORT = ("A. Ignatov, R. Timofte et al., Efficient and Accurate Quantized Image Super-Resolution "
          "on Mobile NPUs, Mobile AI & AIM 2022 Challenge: Report, ECCV 2022 Workshops")
SOURCE = f"{REPORT}, Table 1"


@dataclass(frozen=True)
class PublishedResult:
    """One row of Table 1. Fields the paper leaves empty ('-' or 'n.a.') are None."""

    team: str
    architecture: str | None  # one of our model names, when the row is a network we implement
    size_kb: int | None
    psnr: float
    ssim: float
    delta_psnr: float | None  # FP32 -> INT8 drop
    cpu_ms: float | None
    npu_ms: float | None
    speedup: float | None
    score: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def _row(team, architecture, size_kb, psnr, ssim, delta_psnr, cpu_ms, npu_ms, speedup, score):
    return PublishedResult(team, architecture, size_kb, psnr, ssim, delta_psnr, cpu_ms, npu_ms,
                           speedup, score)


# fmt: off
TABLE1: tuple[PublishedResult, ...] = (
    #    team                  arch     KB   PSNR   SSIM    dPSNR  CPU   NPU   speedup score
    _row("Z6",                 "scsrn", 67,  30.03, 0.8738, 0.06, 809,  19.2, 42.1, 22.22),
    _row("TCLResearchEurope",  None,    53,  29.88, 0.8705, 0.13, 824,  15.9, 51.8, 21.84),
    _row("ECNUSR",             None,    50,  29.82, 0.8697, 0.10, 553,  15.1, 36.6, 21.08),
    _row("LCVG",               None,    48,  29.76, 0.8675, 0.11, 787,  15.0, 52.5, 19.59),
    _row("BOE-IOT-AIBD",       None,    57,  29.80, 0.8675, 0.19, 877,  16.1, 54.5, 19.27),
    _row("NJUST",              None,    57,  29.76, 0.8676, 0.16, 767,  15.8, 48.5, 18.56),
    _row("Antins.cv",          None,    38,  29.58, 0.8609, None, 543,  15.2, 35.7, 15.02),
    _row("GenMedia Group",     None,    56,  29.90, 0.8704, 0.11, 855,  25.6, 33.4, 13.91),
    _row("Vccip",              None,    67,  29.98, 0.8729, None, 1042, 30.5, 34.2, 13.07),
    _row("MegSR",              "ncnet", 65,  29.94, 0.8704, None, 965,  29.8, 32.4, 12.65),
    _row("DoubleZ",            None,    63,  29.94, 0.8712, 0.1,  990,  30.1, 32.9, 12.54),
    _row("Jeremy Kwon",        None,    48,  29.80, 0.8691, 0.09, 782,  25.7, 30.4, 12.09),
    _row("Lab216",             None,    78,  29.94, 0.8728, 0.0,  1110, 31.8, 34.9, 11.85),
    _row("TOVB",               None,    56,  30.01, 0.8740, 0.04, 950,  43.3, 21.9, 9.60),
    _row("ABPN [19]",          "abpn",  53,  29.87, 0.8686, None, 998,  36.9, 27,   9.27),
    _row("Samsung Research",   None,    57,  29.95, 0.8728, 0.1,  941,  43.2, 21.8, 8.84),
    _row("Rtsir2022",          None,    68,  30.00, 0.8729, 0.09, 977,  46.4, 21.1, 8.83),
    _row("Aselsan Research",   "xcat",  30,  29.67, 0.8651, None, 598,  30.2, 19.8, 8.59),
    _row("Klab_SR",            None,    39,  29.88, 0.8700, None, 850,  43.1, 19.7, 8.05),
    _row("TCL Research HK",    None,    121, 30.10, 0.8751, 0.04, 1772, 60.2, 29.4, 7.81),
    _row("RepGSR",             None,    90,  30.06, 0.8739, 0.02, 1679, 61.3, 27.4, 7.26),
    _row("ICL",                None,    55,  29.76, 0.8641, 0.23, 949,  43.2, 22.0, 6.79),
    _row("Just A try",         None,    39,  29.75, 0.8671, None, 766,  42.9, 17.9, 6.76),
    _row("Bilibili AI",        None,    75,  29.99, 0.8729, None, 1075, 68.2, 15.8, 5.92),
    _row("MobileSR",           None,    82,  30.02, 0.8735, 0.07, 1057, 72.4, 14.6, 5.82),
    _row("A+ regression [72]", None,    None, 29.32, 0.8520, None, None, None, None, None),
    _row("Bicubic Upscaling",  None,    None, 28.26, 0.8277, None, None, None, None, None),
)
# fmt: on


def scored_rows() -> list[PublishedResult]:
    """The rows with a runtime and a Final Score (the 25 teams and the ABPN baseline)."""
    return [r for r in TABLE1 if r.npu_ms is not None]


def for_architecture(name: str) -> PublishedResult:
    """The published row of one of our architectures ('abpn', 'scsrn', 'ncnet', 'xcat')."""
    for row in TABLE1:
        if row.architecture == name:
            return row
    raise KeyError(f"no published row for architecture {name!r}")


@dataclass(frozen=True)
class TimedFile:
    """A published model file that the challenge timed: its Table 1 row is a measurement of
    this very file (not of a reconstruction). ``path`` is relative to the folder of
    third-party models (``../shared/artifacts`` beside a checkout)."""

    team: str          # Table 1 row
    path: str
    repository: str    # where the file is published (repository @ commit, folder)
    structure: str     # what distinguishes the graph, for tables

    @property
    def npu_ms(self) -> float:
        return next(r.npu_ms for r in TABLE1 if r.team == self.team)


TIMED_FILES: tuple[TimedFile, ...] = (
    # The ABPN baseline row: "ABPN [19]", 53 KB = the official INT8 file with fixed input.
    TimedFile("ABPN [19]", "nju_abpn/base7_D4C28_bs16ps64_lr1e-3_time.tflite",
              "NJU-Jet/SR_Mobile_Quantization @ d7a6271, TFMODEL/",
              "28 ch, concat anchor (9 copies), clip after depth-to-space"),
    # Team MegSR's submission, 65 KB, fixed input.
    TimedFile("MegSR", "megsr_ncnet/model.tflite", "Algolzw/NCNet @ 0484865, TFLite/",
              "32 ch, nearest-conv anchor (1x1 conv), clip after depth-to-space"),
)
