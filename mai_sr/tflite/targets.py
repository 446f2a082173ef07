"""Every NPU target mai-sr judges, exports for or benchmarks: one table, no TensorFlow.

Each row of :data:`NPU_CONFIGS` is one configuration of one target. What reads it:

- ``mai-sr lint --target T``: :func:`lint_targets` (T judged by the op lists of
  :mod:`mai_sr.tflite.ops`, or by Arm's Vela compiler for an Ethos-U target, at the
  configuration :func:`quoted_config` names);
- ``mai-sr export --target T``: :func:`export_targets`, the Vela-judged targets (Vela has no
  DEPTH_TO_SPACE for any Ethos-U, so the export rewrites it; ``mai_sr.export.targets``);
- ``mai-sr bench --runner vela --npu C``: :func:`vela_configs`, Vela's
  ``--accelerator-config`` values;
- the CLI's choice lists, which call these functions when the parser is built.

A new Ethos-U configuration or NPU target is one row here. The functions read the table
when called (not at import), so every command sees the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from mai_sr.errors import MaiSrError

OP_LISTS = "op lists"  # judged by the op tables of mai_sr.tflite.ops (SyNAP manual, NNAPI)
VELA = "vela"          # judged by Arm's Vela compiler (ethos-u-vela, the `ethosu` extra)
# judged by a phone device profile's placement rules (mai_sr.device.profiles, fitted on the
# ETDS paper's Table 2 timings: Chao et al., CVPR 2023)
PROFILE = "device profile"


@dataclass(frozen=True)
class NpuConfig:
    """One configuration of one NPU target.

    `target` is the name ``lint --target`` and ``export --target`` take; `vela_config` is
    Vela's ``--accelerator-config`` for an Ethos-U (None for targets Vela does not compile
    for); `quoted` marks the configuration a target's lint verdicts and export figures are
    quoted for (one per target)."""

    target: str
    judge: str
    vela_config: str | None = None
    quoted: bool = False


# Vela 5.2's `--accelerator-config` choices (`vela --help`), grouped by product. The quoted
# configuration of each Ethos-U is its largest MAC count per product line that benchmarks/
# vela.py reports (U55-256, U65-512, U85-2048): the figures in the README's Vela table.
NPU_CONFIGS: list[NpuConfig] = [
    NpuConfig("vs680", OP_LISTS, quoted=True),    # Synaptics VS680 (the challenge's NPU)
    NpuConfig("nnapi", OP_LISTS, quoted=True),    # Android NNAPI delegate
    NpuConfig("ethos-u55", VELA, "ethos-u55-32"),
    NpuConfig("ethos-u55", VELA, "ethos-u55-64"),
    NpuConfig("ethos-u55", VELA, "ethos-u55-128"),
    NpuConfig("ethos-u55", VELA, "ethos-u55-256", quoted=True),
    NpuConfig("ethos-u65", VELA, "ethos-u65-256"),
    NpuConfig("ethos-u65", VELA, "ethos-u65-512", quoted=True),
    NpuConfig("ethos-u85", VELA, "ethos-u85-128"),
    NpuConfig("ethos-u85", VELA, "ethos-u85-256"),
    NpuConfig("ethos-u85", VELA, "ethos-u85-512"),
    NpuConfig("ethos-u85", VELA, "ethos-u85-1024"),
    NpuConfig("ethos-u85", VELA, "ethos-u85-2048", quoted=True),
    NpuConfig("dimensity8100-nnapi", PROFILE, quoted=True),    # MediaTek Dimensity 8100, NNAPI
    NpuConfig("dimensity8100-neuron", PROFILE, quoted=True),   # the same SoC, MediaTek Neuron
    NpuConfig("snapdragon888-qnn-gpu", PROFILE, quoted=True),  # Snapdragon 888, QNN GPU
    NpuConfig("snapdragon8gen1-nnapi", PROFILE, quoted=True),  # Snapdragon 8 Gen 1, NNAPI
]

# `bench --runner vela` without --npu: the Ethos-U65 with 256 MACs/cycle is the NPU of NXP's
# i.MX 93, the application-class SoC (Linux, display pipeline) closest to the challenge's
# phone/TV-box setting among Ethos-U parts; U55s sit in microcontrollers and U85 parts were
# not shipping in SoCs at Vela 5.2.
VELA_BENCH_DEFAULT = "ethos-u65-256"


def lint_targets() -> tuple[str, ...]:
    """``lint --target`` choices, in table order."""
    return tuple(dict.fromkeys(c.target for c in NPU_CONFIGS))


def export_targets() -> tuple[str, ...]:
    """``export --target`` choices: the targets Vela judges (their export rewrites
    depth-to-space, which Vela leaves on the CPU)."""
    return tuple(dict.fromkeys(c.target for c in NPU_CONFIGS if c.judge == VELA))


def vela_configs() -> tuple[str, ...]:
    """``bench --runner vela --npu`` choices: Vela's accelerator configurations."""
    return tuple(dict.fromkeys(c.vela_config for c in NPU_CONFIGS if c.vela_config))


def judged_by_profile(target: str) -> bool:
    """Is `target` judged by a phone device profile's placement rules?"""
    return any(c.target == target and c.judge == PROFILE for c in NPU_CONFIGS)


def judged_by_vela(target: str) -> bool:
    """Is `target` (a ``lint --target`` name) placed op by op by Vela?"""
    return any(c.target == target and c.judge == VELA for c in NPU_CONFIGS)


def quoted_config(target: str) -> str:
    """The Vela configuration `target`'s verdicts and figures are quoted for
    (MaiSrError when `target` is not a Vela-judged target of the table)."""
    check_target(target, export_targets())
    return next(c.vela_config for c in NPU_CONFIGS
                if c.target == target and c.quoted and c.vela_config)


def check_target(target: str, choices: tuple[str, ...] | None = None) -> str:
    """`target` if it is one of `choices` (default: every target); else a one-line
    MaiSrError naming them."""
    choices = lint_targets() if choices is None else choices
    if target not in choices:
        raise MaiSrError(f"--target: {target!r} is not one of {', '.join(choices)}")
    return target


def check_vela_config(npu: str) -> str:
    """`npu` if Vela compiles for it (a row of the table); else a one-line MaiSrError."""
    if npu not in vela_configs():
        raise MaiSrError(f"--npu: {npu!r} is not one of {', '.join(vela_configs())}")
    return npu
