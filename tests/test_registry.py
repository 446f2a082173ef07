"""One source for each list: model names (mai_sr.registry), shipped pretrained models (the
files in mai_sr/pretrained), runners (mai_sr.device.RUNNERS) and each runner's own CLI
options; the CLI's choices come from them, and a new runner is one file plus one line."""

import ast
import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mai_sr import device, pretrained
from mai_sr.cli import build_parser, main
from mai_sr.device.base import schema_errors
from mai_sr.registry import MODELS, list_models

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT / "mai_sr" / "models"


def _subparser(name):
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices[name]


def _choices(command, dest):
    sub = _subparser(command)
    sub.format_help()  # adds the deferred runner groups
    for action in sub._actions:
        if action.dest == dest:
            return action.choices
    for action in sub._actions:  # export's --pretrained sits in a mutually exclusive group
        if getattr(action, "_group_actions", None):
            for a in action._group_actions:
                if a.dest == dest:
                    return a.choices
    raise AssertionError(f"{command} has no {dest}")


def _architecture_modules() -> set[str]:
    """Modules of mai_sr/models that define a top-level build() and DEFAULTS, read with ast
    (importing them would import TensorFlow)."""
    found = set()
    for path in MODELS_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        names = {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                 for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                 if isinstance(t, ast.Name)}
        if "build" in functions and "DEFAULTS" in names:
            found.add(f"mai_sr.models.{path.stem}")
    return found


def test_registry_lists_every_architecture_module():
    assert set(MODELS.values()) == _architecture_modules()
    assert list_models() == sorted(MODELS)


def test_model_choices_come_from_the_registry():
    for command in ("train", "profile"):
        assert list(_choices(command, "model")) == list_models()


def test_pretrained_choices_are_the_shipped_files():
    """--pretrained takes each architecture whose default weight ships, then every weight
    whose two INT8 files are in mai_sr/pretrained (named by the weight)."""
    shipped = sorted(p.name[:-len("_none.tflite")]
                     for p in (ROOT / "mai_sr" / "pretrained").glob("*_none.tflite")
                     if p.with_name(p.name.replace("_none", "")).is_file())
    assert shipped and sorted(pretrained.available()) == shipped
    assert all(name.split(".")[0] in list_models() for name in shipped)
    defaults = [a for a, w in pretrained.default_weights().items() if w in shipped]
    assert pretrained.pretrained_names() == defaults + pretrained.available()
    for command in ("export", "eval", "bench", "push", "upscale"):
        assert list(_choices(command, "pretrained")) == pretrained.pretrained_names(), command


def test_pretrained_names_follow_the_files(monkeypatch, tmp_path):
    # a weight of the table without its files is not offered as --pretrained
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    assert pretrained.available() == [] and pretrained.pretrained_names() == []
    (tmp_path / "abpn.mai_builtin.tflite").write_bytes(b"x")
    assert pretrained.available() == []  # the dynamic file is missing too
    (tmp_path / "abpn.mai_builtin_none.tflite").write_bytes(b"x")
    assert pretrained.available() == ["abpn.mai_builtin"]
    assert pretrained.pretrained_names() == ["abpn.mai_builtin"]  # not the default of abpn
    for name in ("abpn.etds_div2k", "abpn.etds_div2k_none"):
        (tmp_path / f"{name}.tflite").write_bytes(b"x")
    assert pretrained.pretrained_names() == ["abpn", "abpn.etds_div2k", "abpn.mai_builtin"]


def test_runner_choices_come_from_runners(capsys):
    assert list(_choices("bench", "runner")) == list(device.RUNNERS)
    assert main(["report", "x.tflite", "--runner", "local,tpu"]) == 2
    assert capsys.readouterr().err == ("mai-sr report: error: --runner tpu: unknown (choose "
                                       f"from {', '.join(sorted(device.RUNNERS))})\n")


def test_each_runner_declares_its_own_options():
    sub = _subparser("bench")
    sub.format_help()
    groups = {g.title: [a.dest for a in g._group_actions] for g in sub._action_groups}
    assert groups["--runner adb options"] == ["adb", "serial", "benchmark_binary", "delegate",
                                              "nnapi_accelerator", "op_profiling",
                                              "report_memory", "npu_libs", "npu_options",
                                              "qairt", "qnn_backend", "qnn_performance_mode",
                                              "qnn_options", "compiler_cache",
                                              "hexagon_version", "allow_fallback", "verbose"]
    # every dest of a runner's options is a keyword of that runner's constructor
    for name in device.RUNNERS:
        title = f"--runner {name} options"
        params = inspect.signature(device.runner_class(name)).parameters
        assert set(groups.get(title, [])) <= set(params), name


def test_help_and_score_import_no_runner_module():
    code = textwrap.dedent("""
        import contextlib, io, json, sys
        from mai_sr.cli import main
        for argv in (["--help"], ["score", "--psnr", "30", "--runtime-ms", "20"]):
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    main(argv)
                except SystemExit:
                    pass
        print(json.dumps(sorted(m for m in sys.modules if m.startswith(
            ("mai_sr.device.", "tensorflow", "ai_edge_litert", "jsonschema")))))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["mai_sr.device.base"]


# ---------------------------------------------------------------- a new runner

TOY_RUNNER = '''
from mai_sr.results import BenchResult


class ToyRunner:
    """Reports the constructor's options as the result, so the test can see what arrived."""

    name = "toy"

    @classmethod
    def add_cli_options(cls, group):
        group.add_argument("--toy-speed", dest="speed", type=float, default=1.0,
                           help="how fast the toy pretends to be")

    def __init__(self, speed=1.0, min_runs=None):
        self.speed, self.min_runs = speed, min_runs

    def bench(self, model_path):
        return BenchResult(runner=self.name, model=str(model_path), avg_ms=10.0 / self.speed,
                           count=self.min_runs, notes=[f"speed {self.speed}"])
'''


@pytest.fixture
def toy_runner(tmp_path, monkeypatch):
    """A runner in a module of its own, registered by one RUNNERS line, and nothing else."""
    (tmp_path / "toy_runner_module.py").write_text(TOY_RUNNER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(device.RUNNERS, "toy", "toy_runner_module:ToyRunner")
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\0" * 16)
    return model


def test_a_new_runner_is_one_file_and_one_line(toy_runner, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "{" + ",".join(device.RUNNERS) + "}" in help_text and ",toy}" in help_text
    assert "--runner toy options:" in help_text
    assert "--toy-speed SPEED" in help_text and "how fast the toy pretends" in help_text

    # its own option and a shared one reach its constructor; the adb options do not
    assert main(["bench", str(toy_runner), "--runner", "toy", "--toy-speed", "4", "--runs", "7",
                 "--serial", "abc", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["runner"], result["avg_ms"], result["count"]) == ("toy", 2.5, 7)
    assert result["notes"] == ["speed 4.0"]
    assert schema_errors(result) == []


def test_report_runner_choices_include_a_new_runner(toy_runner, capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    assert "--runner {" + ",".join(device.RUNNERS) + "}[,...]" in capsys.readouterr().out
    assert main(["report", str(toy_runner), "--runner", "toy,tpu"]) == 2
    assert (f"--runner tpu: unknown (choose from {', '.join(sorted(device.RUNNERS))})"
            in capsys.readouterr().err)


def test_a_runner_that_cannot_be_imported_breaks_only_itself(tmp_path, monkeypatch, capsys):
    (tmp_path / "broken_runner_module.py").write_text("import no_such_package_for_mai_sr\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(device.RUNNERS, "broken", "broken_runner_module:BrokenRunner")
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    help_text = capsys.readouterr().out
    assert "--runner adb options:" in help_text and "--serial SERIAL" in help_text
    assert ("--runner broken options:\n  runner 'broken' is unavailable: No module named"
            in help_text and "'no_such_package_for_mai_sr'" in help_text)
    assert main(["bench", "m.tflite", "--runner", "broken"]) == 2
    assert capsys.readouterr().err == ("mai-sr bench: error: runner 'broken' is unavailable: "
                                       "No module named 'no_such_package_for_mai_sr'\n")


def test_a_new_runner_s_options_reach_report_with_no_change_to_report(toy_runner, tmp_path,
                                                                      capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    help_text = capsys.readouterr().out
    assert "--runner toy options:" in help_text and "--toy-speed SPEED" in help_text
    assert "--runner adb options:" in help_text and "--delegate" in help_text
    out = tmp_path / "report"
    main(["report", str(toy_runner), "--runner", "toy", "--toy-speed", "4", "--out", str(out),
          "--quiet"])
    capsys.readouterr()
    (card,) = [json.loads(p.read_text()) for p in (out / "cards").glob("*.json")]
    assert [(r["runner"], r["avg_ms"], r["notes"]) for r in card["runtimes"]] == [
        ("toy", 2.5, ["speed 4.0"])]
    # an option of a runner the report does not use is refused, not dropped
    assert main(["report", str(toy_runner), "--runner", "local", "--toy-speed", "4",
                 "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "mai-sr report: error: --toy-speed is an option of --runner toy, which this command "
        "does not use (--runner local)\n")
