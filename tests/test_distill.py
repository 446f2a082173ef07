"""Distillation across architectures: a student learns from an imported teacher of another
architecture (SCSRN or XCAT from ETDS-L), the teacher built from its import record."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SHARED_ARTIFACTS

ETDS = SHARED_ARTIFACTS / "etds_abpn" / "ABPN_M4C28_x3.pth"


@pytest.mark.tf
@pytest.mark.slow
def test_a_student_learns_from_a_teacher_of_another_architecture(tmp_path, monkeypatch):
    if not ETDS.is_file():
        pytest.skip(f"{ETDS} not present: put ../shared/artifacts beside the checkout")
    from mai_sr.importer import import_weights
    from mai_sr.train import TrainConfig, load_teacher, train_from_config

    weights = tmp_path / "abpn.weights.h5"
    import_weights(ETDS, "abpn", weights)  # record: model abpn
    config = TrainConfig(model="ncnet", teacher=str(weights), distill_weight=0.5, steps=3,
                         patch=16, batch=2, val_every=3, data="builtin",
                         out=str(tmp_path / "run"))
    teacher = load_teacher(config.teacher, config.model, config.scale)
    assert teacher.name.startswith("abpn")  # the record's architecture, not the student's
    # the teacher computes what the imported weights compute
    lr = np.random.default_rng(0).uniform(0, 255, (1, 24, 24, 3)).astype(np.float32)
    from mai_sr.runs import load_deploy_weights

    np.testing.assert_array_equal(np.asarray(teacher(lr)),
                                  np.asarray(load_deploy_weights(weights, "abpn", 3)(lr)))
    run = train_from_config(config, quiet=True, tensorboard=False)
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["model"] == "ncnet" and recorded["teacher"] == str(weights.resolve())
