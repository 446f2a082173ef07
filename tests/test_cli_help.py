"""Every `--help` of `mai-sr`: each option documented with its default, no line over 100
columns whatever the terminal's width, and examples at the end that the parser accepts."""

import argparse
import inspect
import shlex

import pytest

from mai_sr.cli import build_parser, main

HELP_WIDTH = 100


def _parsers(parser, path=("mai-sr",)):
    """(command, parser) of the top level and of every subcommand, at any depth, each
    completed first (bench's and report's runner option groups are added when help is
    formatted)."""
    parser.format_help()
    yield " ".join(path), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def _options():
    """(command, option, action, help as printed) of every argument but -h and the
    subcommand lists."""
    for command, parser in _parsers(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            name = action.option_strings[0] if action.option_strings else action.dest
            text = formatter._expand_help(action) if action.help else ""
            yield command, name, action, text


def _default_text(value) -> str:
    """A default as a help text writes it: 360x640 for a size, a,b for a list."""
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def test_the_walk_reaches_every_subcommand_and_the_runner_options():
    commands = {command for command, _ in _parsers(build_parser())}
    assert {"mai-sr train", "mai-sr bench", "mai-sr synap convert", "mai-sr import"} <= commands
    options = {(command, name) for command, name, _, _ in _options()}
    # runner options, added to bench and report only when their help is formatted
    assert {("mai-sr bench", "--npu"), ("mai-sr report", "--delegate"),
            ("mai-sr push", "--serial")} <= options


def test_every_option_has_help():
    missing = [f"{command} {name}" for command, name, _, text in _options() if not text.strip()]
    assert missing == []


def test_every_default_is_stated():
    """An option with a default other than None or False says 'default' and the value."""
    unstated = []
    for command, name, action, text in _options():
        if action.default in (None, False, argparse.SUPPRESS):
            continue
        if "default" not in text or _default_text(action.default) not in text:
            unstated.append(f"{command} {name} (default {action.default!r}): {text}")
    assert unstated == []


@pytest.mark.parametrize("columns", [100, 200])
def test_no_help_line_is_wider_than_100_columns(columns, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(columns))
    wide = [f"{command}: {line}" for command, parser in _parsers(build_parser())
            for line in parser.format_help().splitlines() if len(line) > HELP_WIDTH]
    assert wide == []


@pytest.mark.parametrize("columns", [100, 200])
def test_a_long_choice_list_is_listed_whole_in_the_help(columns, monkeypatch, capsys):
    """--npu's eleven Ethos-U configurations: named NPU in the option column, each listed
    in the help text, none cut at a hyphen."""
    from mai_sr.tflite.targets import vela_configs

    monkeypatch.setenv("COLUMNS", str(columns))
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = capsys.readouterr().out
    assert "--npu NPU " in text and "[--npu NPU]" in text
    words = set(text.replace(",", " ").split())
    assert set(vela_configs()) <= words


def test_every_help_ends_with_examples_the_parser_accepts():
    """Each command's help ends with an examples section; every example parses (options,
    choices and types as the parser knows them), shell redirections and comments aside."""
    for command, parser in _parsers(build_parser()):
        epilog = parser.epilog or ""
        assert epilog.startswith("examples:\n"), command
        assert parser.format_help().rstrip().endswith(epilog.rstrip()), command
        examples = epilog.splitlines()[1:]
        assert examples, command
        for example in examples:
            for one in example.split("#")[0].split("&&"):
                argv = shlex.split(one.split(">")[0])
                assert argv[0] == "mai-sr", example
                try:
                    build_parser().parse_args(argv[1:])
                except SystemExit:
                    pytest.fail(f"{command}: example does not parse: {example}")


def test_push_help_says_it_copies():
    push = dict(_parsers(build_parser()))["mai-sr push"]
    text = " ".join(push.format_help().split())
    assert "'all' copies the model to every attached device" in text
    assert "benchmark" not in text.replace("AI Benchmark", "")


def test_bench_states_the_local_runner_s_own_defaults():
    from mai_sr.device.local import LocalRunner

    defaults = {k: p.default for k, p in inspect.signature(LocalRunner).parameters.items()}
    helps = {action.dest: text for command, _, action, text in _options()
             if command == "mai-sr bench"}
    assert f"local {defaults['min_runs']}" in helps["min_runs"]
    assert f"local {defaults['warmup_runs']}" in helps["warmup_runs"]
    assert f"local {defaults['min_seconds']:g}" in helps["min_seconds"]
    assert f"default {defaults['threads']}" in helps["threads"]


@pytest.mark.parametrize("width", range(24, 48))
def test_help_text_wraps_between_words_only(width):
    """textwrap's default would cut '--min-' | 'seconds' at some widths (argparse's own
    formatter does)."""
    from mai_sr.cli_args import HelpFormatter

    text = "Vela runs ethos-u85-2048 with --min-seconds and --qnn-performance-mode set"
    lines = HelpFormatter("mai-sr")._split_lines(text, width)
    assert all(len(line) <= width for line in lines)
    assert " ".join(lines).split() == text.split()
