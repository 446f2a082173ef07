"""Training recipes as files: every shipped weight has one, and ``mai-sr train --recipe FILE``
replays it.

A recipe is a JSON document (as BasicSR keeps one options file per run) naming the weight it
makes and the stages that make it, in order. Each stage is a :class:`TrainConfig` written
as data (the fields of ``mai-sr train``), plus a name; later stages refer to earlier ones:

    {"name": "abpn.etds_div2k", "description": "...",
     "stages": [
       {"name": "qat", "train": {"model": "abpn", "from_run": "{weights:abpn.etds_div2k_fp32}",
                                 "qat_steps": 300, "data": "{data}/T91,{data}/BSD200", ...}}
     ]}

Placeholders in string values: ``{data}`` is the data root (``$MAI_SR_DATA``, else
``../shared/data`` beside the checkout), ``{artifacts}`` the published models'
(``$MAI_SR_ARTIFACTS``, else ``../shared/artifacts``); ``{stage:NAME}`` is the run directory
of an earlier stage, or the weights file of an earlier ``import`` stage (``{"name":
"teacher", "import": {"source": "{artifacts}/...pth", "model": "etds_l"}}``: published
weights through ``mai-sr import``); ``{recipe_dir}`` is the folder the recipe file is in.
Stages run into ``OUT/<stage name>``; a stage that finished is skipped and an interrupted one
resumes, so ``--recipe FILE --out DIR`` is also the way to continue after a kill. The runs are
exact (checkpoints resume bit for bit), so the same recipe on the same machine and thread
count makes the same weights (tested on a shortened recipe).

:func:`recipe_hash` is the sha256 of the recipe's canonical JSON, recorded in each stage's
``recipe.json`` and in the model card of a shipped weight.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import fields
from pathlib import Path

from mai_sr.data import artifacts_root, data_root
from mai_sr.errors import MaiSrError

RECIPE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "mai-sr training recipe",
    "type": "object",
    "required": ["name", "stages"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "stages": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name"], "additionalProperties": False,
            "oneOf": [{"required": ["train"]}, {"required": ["import"]}],
            "properties": {"name": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+$"},
                           "train": {"type": "object"},
                           # published weights brought in by `mai-sr import` (a teacher, or
                           # the start of QAT): {"source": PATH, "model": NAME (optional)}
                           "import": {"type": "object", "required": ["source"],
                                      "additionalProperties": False,
                                      "properties": {"source": {"type": "string"},
                                                     "model": {"type": "string"}}}}}},
    },
}
# Fields of TrainConfig a recipe may not set: where the run goes and how it is run are the
# caller's (they do not change the weights).
NOT_IN_RECIPES = frozenset({"out", "explicit", "distribute", "ckpt_every", "log_every"})
_PLACEHOLDER = re.compile(r"\{(data|artifacts|recipe_dir|stage:[A-Za-z0-9_.-]+)\}")
# The weights file an import stage writes, in its stage folder.
IMPORTED = "imported.weights.h5"
STAGE_RECORD = "recipe.json"

# mai-sr's QAT recipe for published weights (the QAT stage of every shipped weight that starts
# from an import stage): its values were chosen on a held-out split of the training data
# (T91 + BSD200), never on a test set, by ``benchmarks/qat_recipe.py``
# (``benchmarks/results/qat_recipe.json``). The imported FP32 model itself is the teacher of
# half the loss. One edit here changes the recipe; ``benchmarks/pretrained_table.py
# --write-recipes`` then rewrites the recipe files (tests/test_recipe.py checks they agree).
IMPORTED_QAT = {"teacher": "{stage:import}", "from_run": "{stage:import}",
                "distill_weight": 0.5, "qat_steps": 1000, "qat_lr": 1e-4, "loss": "l2",
                "batch": 16, "patch": 48, "seed": 0,
                # Z6's first-layer clip would cut the published kernels' outliers at step one
                "weight_clip": False,
                "data": "{data}/T91,{data}/BSD200", "val_fraction": 0.1, "val_every": 200}
# The QAT steps (and, for one weight, learning rate) of the weights for which another setting
# validated better on the same held-out split (``benchmarks/qat_steps.py``, results in
# ``benchmarks/results/qat_steps.json``, which also lists the weights tried that kept
# IMPORTED_QAT's). IMPORTED_QAT's 1,000 steps and LR were chosen on ABPN alone; these PReLU
# models were still improving at step 1,000, and ESPCN with tanh copies validated best with a
# lower LR over more steps.
IMPORTED_QAT_CHANGES = {"fsrcnn.etds_div2k": {"qat_steps": 12000},
                        "ecbsr_m4c32.etds_div2k": {"qat_steps": 12000},
                        "ecbsr_m6c40.etds_div2k": {"qat_steps": 12000},
                        "ecbsr_m4c32_relu_pair.etds_div2k": {"qat_steps": 4000},
                        "espcn_tanh_copies.etds_div2k": {"qat_steps": 4000, "qat_lr": 3e-05}}


def imported_qat(name: str) -> dict:
    """The QAT stage of shipped weight `name` made from published weights: IMPORTED_QAT, with
    the steps and learning rate of :data:`IMPORTED_QAT_CHANGES` where that names it."""
    return {**IMPORTED_QAT, **IMPORTED_QAT_CHANGES.get(name, {})}


def read_recipe(path) -> dict:
    """The recipe at `path`, checked against :data:`RECIPE_SCHEMA` and the TrainConfig
    fields; one-line MaiSrError naming the file otherwise."""
    from mai_sr.schema import schema_errors
    from mai_sr.train.config import TrainConfig

    path = Path(path)
    try:
        recipe = json.loads(path.read_text())
    except FileNotFoundError:
        raise MaiSrError(f"--recipe {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MaiSrError(f"--recipe {path}: not a JSON recipe ({type(exc).__name__})") from None
    found = schema_errors(recipe, RECIPE_SCHEMA, root="recipe")
    if found:
        raise MaiSrError(f"--recipe {path}: {found[0]}")
    known = {f.name for f in fields(TrainConfig)} - NOT_IN_RECIPES
    names = []
    for stage in recipe["stages"]:
        unknown = sorted(set(stage.get("train", {})) - known)
        if unknown:
            raise MaiSrError(f"--recipe {path}: stage {stage['name']}: unknown or caller-only "
                             f"field(s) {', '.join(unknown)}")
        if stage["name"] in names:
            raise MaiSrError(f"--recipe {path}: two stages named {stage['name']}")
        names.append(stage["name"])
    return recipe


def recipe_hash(recipe: dict) -> str:
    """sha256 of the recipe's canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _expand(value, *, recipe_dir: Path, out: Path, done: set[str], stage: str,
            imports: frozenset = frozenset()):
    if isinstance(value, str):
        def sub(match):
            key = match.group(1)
            if key == "data":
                return str(data_root())
            if key == "artifacts":
                return str(artifacts_root())
            if key == "recipe_dir":
                return str(recipe_dir)
            name = key.split(":", 1)[1]
            if name not in done:
                raise MaiSrError(f"stage {stage}: {{stage:{name}}} names no earlier stage")
            return str(out / name / IMPORTED) if name in imports else str(out / name)
        return _PLACEHOLDER.sub(sub, value)
    if isinstance(value, list):
        return [_expand(v, recipe_dir=recipe_dir, out=out, done=done, stage=stage,
                        imports=imports) for v in value]
    return value


def stage_configs(recipe_path, out) -> list[tuple[str, str, dict]]:
    """(stage name, "train" or "import", its keyword arguments with placeholders filled)
    per stage. ``{stage:NAME}`` of an import stage is the weights file it wrote."""
    recipe_path, out = Path(recipe_path).resolve(), Path(out).resolve()
    recipe = read_recipe(recipe_path)
    done: set[str] = set()
    imports = frozenset(s["name"] for s in recipe["stages"] if "import" in s)
    stages = []
    for stage in recipe["stages"]:
        kind = "train" if "train" in stage else "import"
        kwargs = {k: _expand(v, recipe_dir=recipe_path.parent, out=out, done=done,
                             stage=stage["name"], imports=imports)
                  for k, v in stage[kind].items()}
        stages.append((stage["name"], kind, kwargs))
        done.add(stage["name"])
    return stages


def run_recipe(recipe_path, out, *, quiet: bool = False, tensorboard: bool = True,
               on_stage=None) -> list[Path]:
    """Run every stage of the recipe into ``OUT/<stage>``: a finished stage is skipped, an
    interrupted one resumes. Returns the stage run directories. `on_stage(name, action)`
    is told "skip", "resume" or "start" before each stage."""
    from mai_sr.fileio import write_json
    from mai_sr.train.config import TrainConfig
    from mai_sr.train.loop import train_from_config

    recipe = read_recipe(recipe_path)
    digest = recipe_hash(recipe)
    out = Path(out)
    runs = []
    for name, kind, kwargs in stage_configs(recipe_path, out):
        run = out / name
        record = run / STAGE_RECORD
        if record.exists() and _stage_done(record):
            action = "skip"
        elif run.exists() and kind == "train":
            action = "resume"
        else:
            action = "start"
        if on_stage is not None:
            on_stage(name, action)
        if action != "skip":
            if kind == "import":
                from mai_sr.importer import import_weights

                run.mkdir(parents=True, exist_ok=True)
                for stale in (run / IMPORTED, run / f"{IMPORTED}.json"):  # an unfinished try
                    stale.unlink(missing_ok=True)
                import_weights(kwargs["source"], kwargs.get("model"), run / IMPORTED)
            else:
                config = TrainConfig(**kwargs, out=str(run))
                train_from_config(config, resume=action == "resume", quiet=quiet,
                                  tensorboard=tensorboard)
            write_json(record, {"recipe": recipe["name"], "stage": name, "sha256": digest,
                                "finished": True})
        runs.append(run)
    return runs


def imported_qat_recipe(name: str, description: str, source: str, model: str) -> dict:
    """The recipe of a shipped weight made from published weights: an ``import`` stage of
    `source` as `model`, then QAT with :func:`imported_qat`."""
    return {"name": name, "description": description,
            "stages": [{"name": "import", "import": {"source": source, "model": model}},
                       {"name": "qat", "train": imported_qat(name)}]}


def file_record(path) -> dict:
    """What a model card records of the recipe file that made a weight: its name, file name,
    the file's sha256 (``sha256sum FILE``) and :func:`recipe_hash` (what each stage's
    ``recipe.json`` records)."""
    from mai_sr.fileio import sha256_file

    recipe = read_recipe(path)
    return {"name": recipe["name"], "file": Path(path).name, "sha256": sha256_file(path),
            "json_sha256": recipe_hash(recipe)}


def _stage_done(record: Path) -> bool:
    try:
        return bool(json.loads(record.read_text()).get("finished"))
    except (OSError, ValueError):
        return False
