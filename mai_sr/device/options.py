"""Every runner's own command-line options, for any command that runs runners.

A runner declares its options once, in ``add_cli_options(group)`` (see
:class:`mai_sr.device.base.Runner`). :func:`add_runner_option_groups` puts them in a parser
(`mai-sr bench`, `mai-sr report`), one group per runner, and :func:`collect_runner_options`
gives back, for the runners a command uses, the keyword arguments of their constructors:
so a new runner's options reach `report` with no change to `report`.
"""

from __future__ import annotations

import argparse

from mai_sr.errors import MaiSrError


def add_runner_option_groups(parser: argparse.ArgumentParser) -> None:
    """One argument group per runner in RUNNERS, filled by its class's add_cli_options. A
    runner whose module cannot be imported gets a group that says so, and breaks nothing
    else (`--runner NAME` itself then fails with the same one-line error)."""
    from mai_sr.device import RUNNERS, runner_class

    for name in RUNNERS:
        try:
            cls = runner_class(name)
        except MaiSrError as exc:
            parser.add_argument_group(f"--runner {name} options", str(exc))
            continue
        add_options = getattr(cls, "add_cli_options", None)
        if add_options is not None:
            add_options(parser.add_argument_group(f"--runner {name} options"))


def runner_option_actions(name: str) -> list[argparse.Action]:
    """The argparse actions runner `name` declares (none for a runner without options or
    one that cannot be imported)."""
    from mai_sr.device import runner_class

    try:
        cls = runner_class(name)
    except MaiSrError:
        return []
    add_options = getattr(cls, "add_cli_options", None)
    if add_options is None:
        return []
    scratch = argparse.ArgumentParser(add_help=False)
    add_options(scratch.add_argument_group(name))
    return list(scratch._actions)


def collect_runner_options(args: argparse.Namespace, runners) -> dict[str, dict]:
    """{runner: {constructor keyword: value}} for `runners`, from parsed `args`; options
    left at None (the runner's default) are dropped. An option given for a runner the
    command does not use is a one-line error, rather than silently ignored."""
    from mai_sr.device import RUNNERS

    used = [r for r in runners if r in RUNNERS]
    collected = {}
    for name in RUNNERS:
        actions = runner_option_actions(name)
        if name in used:
            collected[name] = {a.dest: getattr(args, a.dest) for a in actions
                               if getattr(args, a.dest, None) is not None}
            continue
        for action in actions:
            value = getattr(args, action.dest, None)
            if value is not None and value != action.default and not any(
                    action.dest in {a.dest for a in runner_option_actions(u)} for u in used):
                raise MaiSrError(f"{action.option_strings[0]} is an option of --runner {name}, "
                                 f"which this command does not use (--runner "
                                 f"{','.join(runners)})")
    return collected
