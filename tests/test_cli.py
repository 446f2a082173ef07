"""`mai-sr` command line: subcommands, help without TensorFlow, one-line errors with exit 2."""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mai_sr.cli import build_parser, main

SUBCOMMANDS = ("train", "export", "eval", "bench", "push", "synap", "lint", "profile", "score", "models", "fetch",
               "report", "upscale", "import")

# Runs in a fresh interpreter: every --help, a real `score`, and the TF-free library modules,
# checking after each step that TensorFlow has not been imported.
NO_TF_SCRIPT = """
import contextlib, io, json, sys
from mai_sr.cli import main
steps = [["--help"]] + [[c, "--help"] for c in %r] + [["synap", "convert", "--help"]]
steps += [["score", "--psnr", "30.03", "--runtime-ms", "19.2"]]
report = {}
for argv in steps:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    report[" ".join(argv)] = [code, out.getvalue(), "tensorflow" in sys.modules]
for module in ("mai_sr.data", "mai_sr.metrics", "mai_sr.score", "mai_sr.published"):
    __import__(module)
    report["import " + module] = [0, "", "tensorflow" in sys.modules]
print(json.dumps(report))
""" % (SUBCOMMANDS,)


@pytest.fixture(scope="module")
def no_tf_report():
    proc = subprocess.run([sys.executable, "-c", NO_TF_SCRIPT], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_help_and_score_never_import_tensorflow(no_tf_report):
    imported = [step for step, (_, _, tf_loaded) in no_tf_report.items() if tf_loaded]
    assert imported == []
    assert all(code == 0 for code, _, _ in no_tf_report.values())


def test_help_lists_every_subcommand(no_tf_report):
    top = no_tf_report["--help"][1]
    for cmd in SUBCOMMANDS:
        assert cmd in top
        assert f"usage: mai-sr {cmd}" in no_tf_report[f"{cmd} --help"][1]


def test_score_prints_z6(no_tf_report):
    out = no_tf_report["score --psnr 30.03 --runtime-ms 19.2"][1]
    assert abs(float(out.split()[0]) - 22.22) <= 0.02  # MAI 2022 challenge report, Table 1, Z6


def test_console_script_help():
    exe = Path(sys.executable).with_name("mai-sr")
    exe = str(exe) if exe.exists() else shutil.which("mai-sr")
    assert exe, "the mai-sr console script is not installed"
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert all(cmd in proc.stdout for cmd in SUBCOMMANDS)


def test_parser_knows_exactly_these_subcommands():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(SUBCOMMANDS)


@pytest.mark.parametrize("argv", [
    ["nosuchcommand"],
    [],
    ["score", "--bogus"],
    ["score", "--runtime-ms", "0"],
    ["score", "--runtime-ms", "-3"],
    ["score", "--runtime-ms", "fast"],
    ["score", "--psnr", "high", "--runtime-ms", "10"],
    ["score", "--psnr", "nan", "--runtime-ms", "10"],
    ["score", "--psnr", "30"],
    ["profile", "--model", "abpn", "--size", "360by640"],
    ["profile", "--model", "vgg"],
    ["bench", "--threads", "0"],
    ["eval", "--crop", "-1"],
    ["eval", "--tile", "5000"],
    ["eval", "--tile", "99999999999999999999999"],
    ["upscale", "in.png", "out.png", "--tile", "4096"],
    ["synap"],
])
def test_bad_input_is_one_line_on_stderr_and_exit_2(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("mai-sr") and "error:" in captured.err
    assert captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err


def _prints_and_exits(path: Path) -> list[str]:
    """Calls of print(), sys.exit(), exit() and os._exit() in a module, read with ast."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = (func.id if isinstance(func, ast.Name)
                else f"{getattr(func.value, 'id', '?')}.{func.attr}"
                if isinstance(func, ast.Attribute) else "")
        if name in ("print", "exit", "quit", "sys.exit", "os._exit"):
            found.append(f"{path.name}:{node.lineno} {name}()")
    return found


def test_only_the_cli_prints_and_exits():
    package = Path(__file__).resolve().parents[1] / "mai_sr"
    cli = {package / "cli.py", package / "__main__.py"}
    cli |= set((package / "cli").rglob("*.py")) if (package / "cli").is_dir() else set()
    cli |= set(package.glob("cli_*.py"))  # a subcommand's own CLI module (cli_train.py)
    assert _prints_and_exits(package / "cli.py")  # the scan does find them where they are
    offenders = [hit for path in sorted(package.rglob("*.py")) if path not in cli
                 for hit in _prints_and_exits(path)]
    assert offenders == []


def test_bare_command_points_to_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2
    assert "`mai-sr --help` lists them" in capsys.readouterr().err


def test_dash_reads_stdin_for_score_and_writes_stdout_for_eval_csv(monkeypatch, capsys,
                                                                   shared_data):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("model,psnr,runtime_ms\nz6,30.03,19.2\n"))
    assert main(["score", "--csv", "-"]) == 0
    assert capsys.readouterr().out.split()[-1] == "22.24"  # Table 1: Z6 scored 22.22
    monkeypatch.setattr("sys.stdin", io.StringIO(
        '{"runner": "local", "model": "m.tflite", "avg_ms": 19.2}'))
    assert main(["score", "--psnr", "30.03", "--runtime-from", "-"]) == 0
    assert capsys.readouterr().out.strip().split()[0] == "22.24"
    assert main(["eval", "--pretrained", "abpn", "--data", str(shared_data / "Set5"),
                 "--csv", "-", "--quiet"]) == 0
    out = capsys.readouterr()
    rows = out.out.strip().splitlines()
    assert rows[0].startswith("dataset,image,") and len(rows) == 6  # header + 5 images
    assert "Set5" in out.err  # the summary table went to stderr


def test_csv_to_a_closed_stdout_is_one_line(shared_data):
    """`mai-sr eval --csv - >&-`: Python starts with sys.stdout None; one line, exit 2."""
    import os
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "mai_sr", "eval", "--pretrained", "abpn",
                           "--data", str(shared_data / "Set5"), "--csv", "-"],
                          preexec_fn=lambda: os.close(1), stderr=subprocess.PIPE, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("mai-sr eval: error: --csv -: standard output is closed; "
                                   "give --csv FILE")


def _choice_actions(parser, path=()):
    """(subcommand path, option, action) of every argparse action with choices."""
    parser.format_help()  # completes options added later (bench's runner options)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _choice_actions(sub, (*path, name))
        elif action.choices is not None:
            yield " ".join(path), action.option_strings[0] if action.option_strings \
                else action.dest, action


def test_every_choice_list_is_its_library_constant():
    """Each argparse choice list equals the library constant it stands for (none is a copy
    that could drift), and every choice list of the CLI is listed here."""
    from mai_sr.device import RUNNERS
    from mai_sr.device.adb import DELEGATES, QNN_BACKENDS, QNN_PERFORMANCE_MODES
    from mai_sr.export import PRECISIONS
    from mai_sr.fileio import FORMATS
    from mai_sr.importer.core import CHANNEL_ORDER_CHOICES, INPUT_RANGE_CHOICES
    from mai_sr.pretrained import pretrained_names
    from mai_sr.registry import SCALES, list_models
    from mai_sr.tflite.targets import export_targets, lint_targets, vela_configs
    from mai_sr.train.config import DISTRIBUTE, LOSSES, SCHEDULES

    constants = {
        ("train", "--model"): list_models(), ("train", "--scale"): SCALES,
        ("train", "--schedule"): SCHEDULES, ("train", "--loss"): LOSSES,
        ("train", "--distribute"): DISTRIBUTE,
        ("export", "--pretrained"): pretrained_names(), ("export", "--model"): list_models(),
        ("export", "--scale"): SCALES, ("export", "--precision"): PRECISIONS,
        ("export", "--target"): export_targets(),
        ("eval", "--pretrained"): pretrained_names(),
        ("bench", "--pretrained"): pretrained_names(), ("bench", "--runner"): tuple(RUNNERS),
        ("bench", "--npu"): vela_configs(), ("bench", "--delegate"): DELEGATES,
        ("bench", "--qnn-backend"): QNN_BACKENDS,
        ("bench", "--qnn-performance-mode"): tuple(QNN_PERFORMANCE_MODES),
        ("push", "--pretrained"): pretrained_names(),
        # report takes every runner's own options (the same declarations as bench's)
        ("report", "--npu"): vela_configs(), ("report", "--delegate"): DELEGATES,
        ("report", "--qnn-backend"): QNN_BACKENDS,
        ("report", "--qnn-performance-mode"): tuple(QNN_PERFORMANCE_MODES),
        ("lint", "--target"): lint_targets(),
        ("profile", "--model"): list_models(), ("profile", "--scale"): SCALES,
        ("score", "--scale"): SCALES, ("models", "--scale"): SCALES, ("import", "--scale"): SCALES,
        ("upscale", "--pretrained"): pretrained_names(), ("upscale", "--format"): tuple(FORMATS),
        ("import", "--model"): list_models(),
        ("import", "--channel-order"): CHANNEL_ORDER_CHOICES,
        ("import", "--input-range"): INPUT_RANGE_CHOICES,
    }
    found = {(cmd, option): tuple(action.choices)
             for cmd, option, action in _choice_actions(build_parser())
             if cmd}  # the top level's only choice list is the subcommands themselves
    assert set(found) == set(constants)
    for key, constant in constants.items():
        assert found[key] == tuple(constant), key


def test_building_the_parser_imports_no_choice_list_module():
    # The train and import option lists are library constants read lazily: building the
    # parser (which every command does) must not import their modules, and their choices must
    # still be checked and shown when an option of theirs is used.
    script = ("import sys; from mai_sr.cli import build_parser; build_parser(); "
              "print(sorted(m for m in sys.modules if m.startswith(('mai_sr.train', "
              "'mai_sr.importer'))))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["train", "--loss", "l3"])
    assert exc.value.code == 2
    from mai_sr.train.config import LOSSES
    usage = build_parser()._subparsers._group_actions[0].choices["train"].format_usage()
    assert "{" + ",".join(LOSSES) + "}" in usage


def test_warnings_reach_the_user_in_one_line_but_not_dependencies_deprecations():
    import io

    from mai_sr.cli import _one_line_warning

    show, out = _one_line_warning("export"), io.StringIO()
    show("distutils Version classes are deprecated", DeprecationWarning, "x.py", 1, file=out)
    show("soon gone", PendingDeprecationWarning, "x.py", 1, file=out)
    assert out.getvalue() == ""
    show("a.png: skipped (2x2 px)", UserWarning, "x.py", 1, file=out)
    assert out.getvalue() == "mai-sr export: warning: a.png: skipped (2x2 px)\n"


def _console(code: str, **kwargs) -> subprocess.CompletedProcess:
    """Run `code` (which ends by calling the console entry point) in a fresh interpreter."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, **kwargs)


def test_console_exit_keeps_the_exit_code_the_output_and_the_atexit_handlers():
    # run() leaves with os._exit: what a normal exit does that matters must still happen.
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('atexit ran', flush=True))\n"
            "sys.argv = ['mai-sr'] + sys.argv[1:]\n"
            "from mai_sr.__main__ import run\n"
            "run()\n")
    ok = subprocess.run([sys.executable, "-c", code, "models"], capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert lines[0].startswith("architectures: ") and "abpn.etds_div2k" in ok.stdout
    assert lines[-1] == "atexit ran"  # after the command's whole output
    bad = subprocess.run([sys.executable, "-c", code, "eval", "--crop", "-1"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout.splitlines() == ["atexit ran"]


def test_console_exit_with_a_live_thread_waits_for_it():
    code = ("import sys, threading, time\n"
            "sys.argv = ['mai-sr', '--version']\n"
            "def late():\n"
            "    time.sleep(0.3); print('thread finished', flush=True)\n"
            "threading.Thread(target=late).start()\n"
            "from mai_sr.__main__ import run\n"
            "run()\n")
    proc = _console(code)
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "thread finished"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_console_output_to_a_full_disk_is_an_error_not_a_silent_loss():
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "mai_sr", "models"], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith("No space left on device")
