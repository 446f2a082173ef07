"""Which images a model was trained on, and the notes `eval` prints when it scores on them.

An export of a `mai-sr train` run records the run's training and validation images in its
provenance (``source.training``, from the run's ``config.json``): the data sources by name
(``builtin`` or folder names, never paths) and the image names. `eval` compares a data
set's images with them, so a score on training images is never read as a test score. The
builtin photos are `mai-sr train`'s default training data, so scoring on them is always
noted, also for a model that records nothing.

No TensorFlow: only the provenance (sidecar or embedded metadata) is read.
"""

from __future__ import annotations

import os
from pathlib import Path

from mai_sr.errors import MaiSrError

# A standard SR test set (never training data here) that `eval`'s notes point to when it
# lies under the data root: Set14 (Zeyde et al., "On Single Image Scale-Up Using
# Sparse-Representations", Curves and Surfaces 2010).
TEST_SET = "Set14"


def source_names(data: str | None) -> list[str]:
    """A data argument as provenance records it: 'builtin' or folder names, no paths."""
    from mai_sr.data import split_sources

    return [item if item == "builtin" else Path(item).name
            for item in split_sources(data or "builtin")]


def training_record(config: dict) -> dict:
    """The ``training`` entry of an export's provenance, from a run's ``config.json``: the
    data sources by name and the image names of training and validation."""
    images = config.get("data_images") or {}
    return {"data": source_names(config.get("data")),
            "val": source_names(config["val"]) if config.get("val") else None,
            "images": list(images.get("train", [])), "val_images": list(images.get("val", []))}


def model_training(path: str | os.PathLike, sidecar: dict | None = None) -> tuple[dict, str]:
    """(the ``training`` record of a .tflite file's provenance or {}, the run it names or "").

    `sidecar` is the file's sidecar when already read; else the embedded record is read."""
    record = sidecar or {}
    if not record:
        from mai_sr.tflite.artifacts import read_metadata

        try:
            record = read_metadata(path) or {}
        except MaiSrError:  # not ours to judge here: the runtime names a bad file
            record = {}
    source = record.get("source") or {}
    return source.get("training") or {}, str(source.get("run") or "")


def suggest_test_set() -> str:
    """`--data` with a test set found under the data root (``$MAI_SR_DATA``, else
    ``../shared/data`` beside the checkout), or a generic ``--data DIR``."""
    from mai_sr.data import data_root

    folder = data_root() / TEST_SET
    return f"--data {folder}" if folder.is_dir() else "--data DIR (a test set such as Set14)"


def data_notes(dataset: str, image_names: list[str], training: dict, run: str = "") -> list[str]:
    """Lines saying that `dataset`'s images (`image_names`) are training or validation images
    of the model (per its `training` record), or that they are the builtin photos; [] for a
    data set the model did not train on."""
    n = len(image_names)
    names = set(image_names)

    def overlap(sources, images) -> int:
        return len(names & set(images or ())) if dataset in (sources or ()) else 0

    trained = overlap(training.get("data"), training.get("images"))
    validated = overlap(training.get("val") or training.get("data"), training.get("val_images"))
    if trained or validated:
        val = f"{validated} {'its validation image' if validated == 1 else 'validation images'}"
        said = (f"{trained} of these {n} images are this model's training images"
                + (f" and {val}" if validated else "") if trained
                else f"{validated} of these {n} images are this model's validation images")
        whose = f" (run {run})" if run else ""
        return [f"{dataset}: {said}{whose}: not a test score; for one give {suggest_test_set()}"]
    if dataset == "builtin":
        return ["builtin: scikit-image's photos, the training photos of `mai-sr train` by "
                f"default, not a test set; for a test score give {suggest_test_set()}"]
    return []
