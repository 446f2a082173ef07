"""One table of NPU targets (mai_sr.tflite.targets): what lint --target, export --target,
bench --runner vela --npu and the CLI's choices read. A throwaway row monkeypatched into the
table is a new target everywhere, with no other edit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mai_sr.cli import build_parser, main
from mai_sr.tflite import targets
from mai_sr.tflite.targets import (VELA, NpuConfig, export_targets, lint_targets, quoted_config,
                                   vela_configs)

ROOT = Path(__file__).resolve().parents[1]
ABPN = ROOT / "mai_sr" / "pretrained" / "abpn.mai_builtin.tflite"
# A new Ethos-U target judged on a configuration Vela knows, and a new configuration of an
# existing target (Vela does not know it: it only has to reach the choice lists).
THROWAWAY_TARGET = NpuConfig("ethos-u65-lite", VELA, "ethos-u65-256", quoted=True)
THROWAWAY_CONFIG = NpuConfig("ethos-u85", VELA, "ethos-u85-4096")


@pytest.fixture
def throwaway(monkeypatch):
    monkeypatch.setattr(targets, "NPU_CONFIGS",
                        [*targets.NPU_CONFIGS, THROWAWAY_TARGET, THROWAWAY_CONFIG])


def test_table_lists_velas_own_configurations():
    """The Ethos-U rows are exactly Vela's --accelerator-config values; each target has one
    quoted configuration, of its own product line."""
    accelerator = pytest.importorskip("ethosu.vela.architecture_features").Accelerator
    assert vela_configs() == tuple(a.value for a in accelerator)
    assert lint_targets() == ("vs680", "nnapi", "ethos-u55", "ethos-u65", "ethos-u85",
                              "dimensity8100-nnapi", "dimensity8100-neuron",
                              "snapdragon888-qnn-gpu", "snapdragon8gen1-nnapi")
    assert export_targets() == ("ethos-u55", "ethos-u65", "ethos-u85")
    for target in lint_targets():
        assert sum(c.quoted for c in targets.NPU_CONFIGS if c.target == target) == 1
    assert {t: quoted_config(t) for t in export_targets()} == {
        "ethos-u55": "ethos-u55-256", "ethos-u65": "ethos-u65-512",
        "ethos-u85": "ethos-u85-2048"}  # the configurations of the README's Vela table


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0
    return capsys.readouterr().out


def test_throwaway_row_reaches_every_choice_list_and_help(throwaway, capsys):
    assert "ethos-u65-lite" in _help(["lint", "--help"], capsys)
    assert "ethos-u65-lite" in _help(["export", "--help"], capsys)
    assert "ethos-u85-4096" in _help(["bench", "--help"], capsys)
    args = build_parser().parse_args(["export", "o.tflite", "--pretrained", "abpn", "--target",
                                      "ethos-u65-lite"])
    assert args.target == "ethos-u65-lite"
    args = build_parser().parse_args(["lint", "m.tflite", "--target", "ethos-u65-lite"])
    assert args.target == "ethos-u65-lite"
    from mai_sr.device.vela import VelaRunner

    assert VelaRunner(npu="ethos-u85-4096").npu == "ethos-u85-4096"


def test_without_the_row_the_name_is_refused(capsys):
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["lint", "m.tflite", "--target", "ethos-u65-lite"])
    assert done.value.code == 2
    assert "invalid choice: 'ethos-u65-lite'" in capsys.readouterr().err
    from mai_sr.errors import MaiSrError
    from mai_sr.lint import lint_for_target

    with pytest.raises(MaiSrError, match="not one of vs680, nnapi, ethos-u55"):
        lint_for_target(ABPN, "ethos-u65-lite")


@pytest.mark.slow
def test_throwaway_target_is_linted_by_vela(throwaway, capsys):
    pytest.importorskip("ethosu", reason="Vela is in the 'ethosu' and 'test' extras")
    from mai_sr.lint import lint_for_target

    report = lint_for_target(ABPN, "ethos-u65-lite")
    assert report.tool.endswith("ethos-u65-256")
    assert [r["type"] for r in report.cpu_ops] == ["DEPTH_TO_SPACE"]
    assert "--target ethos-u65-lite" in report.cpu_ops[0]["fix"]
    assert main(["lint", str(ABPN), "--target", "ethos-u65-lite"]) == 2
    assert "ethos-u65-lite: 13/14 TFLite ops on the NPU" in capsys.readouterr().out


@pytest.mark.tf
@pytest.mark.slow
def test_throwaway_target_is_an_export_target(throwaway, tmp_path):
    """export --target's rewrite accepts the new target, and Vela then places every op of
    the file on its NPU."""
    pytest.importorskip("ethosu", reason="Vela is in the 'ethosu' and 'test' extras")
    from mai_sr.export.targets import rewrite_for_target
    from mai_sr.lint import lint_for_target

    data, rewrite = rewrite_for_target(ABPN.read_bytes(), "ethos-u65-lite")
    assert rewrite.target == "ethos-u65-lite" and rewrite.depth_to_space == 1
    path = tmp_path / "abpn_lite.tflite"
    path.write_bytes(data)
    assert lint_for_target(path, "ethos-u65-lite").cpu_ops == []


def test_lint_imports_nothing_of_export():
    """lint judges every target (Ethos-U through Vela) without the export package."""
    code = (f"import sys; from mai_sr.lint import lint_file; lint_file({str(ABPN)!r}); "
            f"lint_file({str(ABPN)!r}, 'vs680'); "
            "print([m for m in sys.modules if m.startswith(('mai_sr.export', 'tensorflow'))])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
