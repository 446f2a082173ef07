"""Shipped pretrained INT8 models, one set of files per weight.

A weight is named ``ARCH.TAG`` (:mod:`mai_sr.weights`): ``abpn.etds_div2k`` (the ETDS
authors' DIV2K-trained ABPN, quantized by mai-sr), ``abpn.mai_builtin`` (trained by mai-sr).
The table ``shipped.json`` lists the shipped weights (source, licence, paper, the recipe file
in ``recipes/`` that made each) and the **default** weight of each architecture, with why:
the one its bare name means (``--pretrained abpn`` is ``--pretrained abpn.etds_div2k``).

For each shipped weight NAME this folder holds:

- ``NAME.tflite``       fixed-shape INT8 model, 1x360x640x3 uint8 -> 1x1080x1920x3 uint8 (runtime)
- ``NAME_none.tflite``  dynamic-shape INT8 model (fidelity, any image size)
- ``NAME.weights.h5``   Keras deploy-graph weights (``create_model(ARCH, deploy=True)``): the
                        float weights as quantization-aware training left them
- ``NAME.qat.json``     the QAT activation ranges (``mai_sr.models.qat.activation_ranges``); with
                        the weights they rebuild the QAT model, so ``mai-sr export
                        --pretrained NAME`` writes the shipped INT8 file again (any shape)
- ``NAME.json``         model card (the report's schema) with the measured numbers, the
                        weight's attribution and its recipe file's sha256

``benchmarks/pretrained_table.py --ship`` exports, measures and copies them here.

Only the standard library is imported here, so model-running commands stay TF-free.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from mai_sr.errors import MaiSrError

PRETRAINED_DIR = Path(__file__).resolve().parent
# The table lives with the code, not with the files: a broken install (files deleted, or
# PRETRAINED_DIR elsewhere in tests) still knows what should be there and says what is missing.
TABLE = Path(__file__).resolve().parent / "shipped.json"
RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
KINDS = {"fixed": ".tflite", "dynamic": "_none.tflite", "weights": ".weights.h5",
         "ranges": ".qat.json", "card": ".json"}


@lru_cache(maxsize=1)
def shipped_table() -> dict:
    """``shipped.json``: {"defaults": {arch: {"weight", "why"}}, "weights": [{name, ...}]}."""
    try:
        table = json.loads(TABLE.read_text())
    except (OSError, ValueError) as exc:
        raise MaiSrError(f"{TABLE}: unreadable table of shipped weights ({exc})") from None
    if not (isinstance(table, dict) and isinstance(table.get("defaults"), dict)
            and isinstance(table.get("weights"), list)):
        raise MaiSrError(f"{TABLE}: not a table of shipped weights (defaults and weights)")
    return table


def shipped_weights() -> list[dict]:
    """The table's shipped weights (dicts: name, architecture, scale, source, licence,
    paper, trained_on, recipe), in its order."""
    return list(shipped_table()["weights"])


def default_weights() -> dict[str, str]:
    """{architecture: the weight its bare name means}."""
    return {arch: row["weight"] for arch, row in shipped_table()["defaults"].items()}


def weight_name(name: str) -> str:
    """The shipped weight `name` means: itself (``abpn.mai_builtin``), or the default of a
    bare architecture (``abpn`` -> ``abpn.etds_div2k``). One-line MaiSrError otherwise."""
    defaults = default_weights()
    if name in defaults:
        return defaults[name]
    if name in {w["name"] for w in shipped_weights()}:
        return name
    raise MaiSrError(f"--pretrained {name}: not a shipped model (choose from "
                     f"{', '.join(pretrained_names())})")


def architecture(name: str) -> str:
    """The architecture of shipped weight (or bare architecture) `name`."""
    full = weight_name(name)
    return next(w["architecture"] for w in shipped_weights() if w["name"] == full)


def pretrained_path(name: str, kind: str = "dynamic") -> Path:
    """Path of a shipped file; `name` is a weight (``abpn.mai_builtin``) or an architecture
    (its default weight), `kind` is fixed, dynamic, weights, ranges or card.

    Raises MaiSrError naming the file when the weight or file is not shipped.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    path = PRETRAINED_DIR / f"{weight_name(name)}{KINDS[kind]}"
    if not path.is_file():
        raise MaiSrError(f"--pretrained {name}: {path.name} is not shipped in {PRETRAINED_DIR}")
    return path


def available() -> list[str]:
    """Names of the shipped weights whose fixed and dynamic INT8 files are both here."""
    return [w["name"] for w in shipped_weights()
            if all((PRETRAINED_DIR / f"{w['name']}{KINDS[k]}").is_file()
                   for k in ("fixed", "dynamic"))]


def pretrained_names() -> list[str]:
    """What ``--pretrained`` takes: each architecture whose default weight is available,
    then every available weight."""
    shipped = available()
    return [arch for arch, weight in default_weights().items() if weight in shipped] + shipped


def recipe_path(name: str) -> Path | None:
    """The recipe file that made shipped weight `name` (``recipes/NAME.json``), or None."""
    full = weight_name(name)
    recipe = next(w.get("recipe") for w in shipped_weights() if w["name"] == full)
    return RECIPES_DIR / recipe if recipe else None
