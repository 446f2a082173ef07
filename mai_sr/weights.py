"""Where weights come from: named apart from architectures, resolved in one place.

An architecture (``abpn``, ``etds_l``: :mod:`mai_sr.registry`) says how a network is built;
a **weight** says what it learnt and where that came from. Weights are named ``ARCH.TAG``
(as timm keeps "registered" apart from "has weights"):

- the INT8 models this package ships (``mai_sr/pretrained/``, listed in its
  ``shipped.json``): ``abpn.etds_div2k`` (published DIV2K weights quantized by mai-sr),
  ``abpn.mai_builtin``, ``ncnet.mai_builtin``, ... (trained by mai-sr); a bare architecture
  name (``--pretrained abpn``) is an alias for that architecture's default shipped weight;
- ``etds_l.etds_div2k``, ``abpn.etds_div2k_x2``, ``ecbsr.etds_div2k_et``, ...: the DIV2K-
  trained checkpoints of the ETDS zoo (Chao et al., "Equivalent Transformation and Dual
  Stream Network Construction for Mobile Image Super-Resolution", CVPR 2023; Apache-2.0),
  listed with their source, licence, scale, sha256 and published figures in
  ``mai_sr/pretrained/zoo.json``, fetched from their public URL by :func:`fetch` into the
  user's cache and checked against their sha256. A zoo weight that also ships
  (``abpn.etds_div2k``) is both: ``--pretrained`` runs its shipped INT8 files, ``fetch``
  still downloads the published checkpoint.

:func:`resolve` is the one resolver of what a ``--weights``/``--from``/``--init``/
``--teacher`` option names: a run directory, a deploy-weights file (``.weights.h5``, what
``mai-sr import`` writes, with its record), a shipped name, or a zoo name (its imported
deploy weights in the cache, made by ``mai-sr fetch NAME``). :func:`model_file` is its
twin for the commands that run an INT8 file: a ``.tflite`` path or ``--pretrained NAME``.
Standard library only (and the TF-free :mod:`mai_sr.tflite` reader for a path's set check).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from mai_sr.errors import MaiSrError
from mai_sr.fileio import atomic_path, sha256_file

SUFFIX = ".weights.h5"
ZOO_TABLE = Path(__file__).resolve().parent / "pretrained" / "zoo.json"
# Where `fetch` downloads from: the zoo's public URLs, or this base (a mirror: an https:// or
# file:// URL, or a folder) holding FAMILY/NAME.pth as the zoo does.
BASE_ENV = "MAI_SR_WEIGHTS_URL"
CACHE_ENV = "MAI_SR_CACHE"
FETCH_TIMEOUT_S = 60
# A zoo checkpoint is a few hundred KB; refuse a download that grows past this.
MAX_DOWNLOAD_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Weight:
    """One named weight: what it is, where it comes from, what was published about it."""

    name: str
    architecture: str
    scale: int
    source: str
    licence: str
    sha256: str | None = None
    url: str | None = None
    file: str | None = None          # zoo: FAMILY/NAME.pth under the zoo's folder
    bytes: int | None = None
    form: str = "published form"
    trained_on: str | None = None
    paper: str | None = None
    published_psnr_y: dict | None = None
    params_k: float | None = None
    macs_g: float | None = None
    shipped: bool = False            # INT8 files in mai_sr/pretrained
    recipe: str | None = None        # shipped: the recipe file that made it (recipes/NAME.json)
    default_for: str | None = None   # shipped: the architecture whose bare name means it


# The tag of the weights mai-sr trained itself on T91 + BSD200 (mai_sr/pretrained).
SHIPPED_TAG = "mai_builtin"
_SHIPPED_FIELDS = ("architecture", "scale", "source", "licence", "paper", "trained_on", "recipe")


def _shipped() -> list[Weight]:
    """The shipped weights whose INT8 files are present, each merged with its zoo row when
    it has one (the published checkpoint it was made from: url, sha256, figures)."""
    from mai_sr.pretrained import available, default_weights, shipped_weights

    zoo = {w.name: w for w in _zoo()}
    defaults = {weight: arch for arch, weight in default_weights().items()}
    present = set(available())
    out = []
    for row in shipped_weights():
        if row["name"] not in present:
            continue
        fields = {k: row[k] for k in _SHIPPED_FIELDS if k in row}
        base = zoo.get(row["name"])
        weight = Weight(name=row["name"], **fields) if base is None else replace(base, **fields)
        out.append(replace(weight, shipped=True, default_for=defaults.get(row["name"])))
    return out


@lru_cache(maxsize=1)
def _zoo() -> tuple[Weight, ...]:
    try:
        rows = json.loads(ZOO_TABLE.read_text())["weights"]
    except (OSError, ValueError, KeyError) as exc:
        raise MaiSrError(f"{ZOO_TABLE}: unreadable weights table ({exc})") from None
    return tuple(Weight(**row) for row in rows)


def list_weights() -> list[Weight]:
    """Every named weight: the shipped ones, then the zoo's not shipped, sorted by name
    within each."""
    shipped = sorted(_shipped(), key=lambda w: w.name)
    names = {w.name for w in shipped}
    return shipped + sorted((w for w in _zoo() if w.name not in names), key=lambda w: w.name)


def get_weight(name: str) -> Weight:
    """The weight called `name`, or a one-line MaiSrError with the closest names."""
    import difflib

    found = {w.name: w for w in list_weights()}
    if name in found:
        return found[name]
    close = difflib.get_close_matches(name, list(found), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `mai-sr models` lists them"
    raise MaiSrError(f"unknown weights {name!r}{hint}")


# ---------------------------------------------------------------- the cache and fetch


def cache_dir() -> Path:
    """``$MAI_SR_CACHE``, else ``$XDG_CACHE_HOME/mai-sr``, else ``~/.cache/mai-sr``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "mai-sr"


def cached_checkpoint(weight: Weight) -> Path:
    """Where a fetched checkpoint lives in the cache (whether or not it is there)."""
    return cache_dir() / "weights" / weight.name / Path(weight.file or weight.name).name


def cached_deploy_weights(weight: Weight) -> Path:
    """Where ``mai-sr fetch NAME`` puts the imported deploy weights of a zoo checkpoint."""
    return cache_dir() / "weights" / weight.name / f"{weight.name}{SUFFIX}"


def _source_url(weight: Weight, base: str | None) -> str:
    base = base if base is not None else os.environ.get(BASE_ENV)
    if not base:
        return weight.url
    if "://" not in base:
        base = Path(base).resolve().as_uri()
    return f"{base.rstrip('/')}/{weight.file}"


def fetch(name: str, *, base: str | None = None) -> Path:
    """Download zoo weight `name` into the cache (once) and return the file.

    The file is checked against the table's sha256 before it enters the cache: a wrong
    hash, a truncated download or a download over :data:`MAX_DOWNLOAD_BYTES` gives a
    one-line MaiSrError and leaves nothing in the cache. `base` (or ``$MAI_SR_WEIGHTS_URL``)
    replaces the public URL's base with a mirror (https://, file:// or a folder).
    """
    weight = get_weight(name)
    if weight.sha256 is None:
        raise MaiSrError(f"{name}: ships with mai-sr; nothing to fetch (use --pretrained "
                         f"{weight.name})")
    target = cached_checkpoint(weight)
    if target.is_file() and sha256_file(target) == weight.sha256:
        return target
    url = _source_url(weight, base)
    # atomic_path renames the checked temp file into the cache, or deletes it on any error
    with atomic_path(target) as tmp:
        digest, size = hashlib.sha256(), 0
        with open(tmp, "wb") as out, _open_url(url) as response:
            while chunk := response.read(1 << 16):
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    raise MaiSrError(f"{url}: larger than {MAX_DOWNLOAD_BYTES // 2**20} MiB; "
                                     f"not the {weight.bytes:,}-byte checkpoint of {name}")
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != weight.sha256:
            got = f"{size:,} bytes, sha256 {digest.hexdigest()[:12]}..."
            raise MaiSrError(f"{url}: {got}, not the expected {weight.bytes:,} bytes with sha256 "
                             f"{weight.sha256[:12]}...; not cached")
    return target


@contextlib.contextmanager
def _open_url(url: str):
    # Imported here: only `fetch` downloads, and urllib.request brings http, email and ssl
    # (about 10 ms) into every command that resolves a weight name.
    import urllib.error
    import urllib.request

    try:
        response = urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S)  # noqa: S310
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise MaiSrError(f"{url}: cannot download ({reason})") from None
    with response:
        yield response


# ---------------------------------------------------------------- deploy-weights files


def is_weights_file(source) -> bool:
    """True when `source` names a deploy-weights file rather than a run directory."""
    return str(source).endswith(SUFFIX) and not Path(source).is_dir()


def weights_record(path) -> dict:
    """The record ``mai-sr import`` writes beside a deploy-weights file (``<file>.json``),
    or {} when there is none or it is unreadable."""
    record_path = Path(f"{path}.json")
    if not record_path.is_file():
        return {}
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def weights_file_model(path, model: str | None, scale: int | None = None,
                       option: str = "--from") -> tuple[str, str, int | None]:
    """(absolute path, architecture, scale) for ``OPTION FILE``: `model` and `scale`, else the
    import record's (scale None when neither says).

    Raises a one-line MaiSrError when the file is missing, or the architecture is unknown or
    differs from the one the import record names, or the scale differs from the record's.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise MaiSrError(f"{option} {path}: not found")
    record = weights_record(path)
    record_name = f"{path.name}.json"
    check_record_hash(path, record, Path(record_name))
    recorded_model, recorded_scale = record.get("model"), record.get("scale")
    if model is not None and recorded_model is not None and model != recorded_model:
        raise MaiSrError(f"--model {model}: {option} {path.name} holds {recorded_model} "
                         f"weights (per {record_name})")
    if scale is not None and recorded_scale is not None and scale != recorded_scale:
        raise MaiSrError(f"--scale {scale}: {option} {path.name} holds x{recorded_scale} "
                         f"weights (per {record_name})")
    model = model or recorded_model
    if model is None:
        raise MaiSrError(f"{option} {path.name}: give --model (the architecture of these "
                         "deploy weights)")
    return str(path), model, scale or recorded_scale


def check_record_hash(path: Path, record: dict, record_path: Path) -> None:
    """A record that names the weights' sha256 (``mai-sr import`` writes it) must match the
    file: a mismatch means another import's record, or a set torn by a kill between its
    two renames. One-line MaiSrError."""
    expected = record.get("weights_sha256")
    if expected is None:
        return
    actual = sha256_file(path)
    if actual != expected:
        raise MaiSrError(f"{Path(path).name} does not match its record {Path(record_path).name} "
                         f"(weights sha256 {actual[:12]}..., the record says "
                         f"{str(expected)[:12]}...): another import's record or a torn "
                         "write; import again")


# ---------------------------------------------------------------- the one resolver


@dataclass(frozen=True)
class Resolved:
    """What an option naming weights resolved to."""

    kind: str                 # "run", "file", "shipped"
    path: Path                # the run directory, or the deploy-weights file
    architecture: str | None  # None for a run (its config.json says)
    scale: int | None
    name: str | None = None   # the weight's name, for shipped and zoo weights


def resolve(spec, *, option: str = "--weights", model: str | None = None,
            scale: int | None = None) -> Resolved:
    """The one resolver of "which weights": a run directory, a ``.weights.h5`` file, a
    shipped name (``abpn``, ``abpn.mai_builtin``, ``abpn.etds_div2k``: its shipped deploy
    weights) or a zoo name (``etds_l.etds_div2k``: its deploy weights as ``mai-sr fetch``
    imported them into the cache).

    Raises one line naming `option` when `spec` is none of these, or a zoo weight has not
    been fetched yet (saying the command that fetches it).
    """
    text = str(spec)
    path = Path(text)
    if path.is_dir():
        return Resolved("run", path.resolve(), None, None)
    if is_weights_file(text):
        file, arch, file_scale = weights_file_model(text, model, scale, option=option)
        return Resolved("file", Path(file), arch, file_scale)
    from mai_sr.pretrained import architecture, pretrained_names, pretrained_path, weight_name

    if text in pretrained_names():  # a shipped weight, or an architecture's default one
        return Resolved("shipped", pretrained_path(text, "weights"), architecture(text), 3,
                        name=weight_name(text))
    if "." in text:
        weight = get_weight(text)
        deploy = cached_deploy_weights(weight)
        if not deploy.is_file():
            raise MaiSrError(f"{option} {text}: not fetched yet; run `mai-sr fetch {text}` "
                             "(downloads, checks and imports it)")
        return Resolved("file", deploy, weight.architecture, weight.scale, name=weight.name)
    raise MaiSrError(f"{option} {text}: neither a run directory, a {SUFFIX} file, a shipped "
                     f"model ({', '.join(pretrained_names())}) nor a weights name "
                     "(`mai-sr models`)")


def model_file(model: str | os.PathLike | None, pretrained: str | None,
               kind: str = "dynamic") -> Path:
    """The .tflite a command runs: `model`, or the shipped `pretrained` one of `kind`
    ("dynamic" for image work, "fixed" for timing: the 360x640 file that was benchmarked)."""
    if model and pretrained:
        raise MaiSrError(f"give a .tflite model file or --pretrained {pretrained}, not both")
    if pretrained:
        from mai_sr.pretrained import pretrained_path

        return pretrained_path(pretrained, kind)
    if not model:
        raise MaiSrError("no model: give a .tflite model file or --pretrained NAME")
    from mai_sr.tflite.artifacts import check_set

    check_set(model)
    return Path(model)
