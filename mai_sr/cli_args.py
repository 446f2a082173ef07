"""The argparse pieces of the `mai-sr` command line: its parser class, its help formatter,
the argument types of its options and choice lists read from library constants.

:mod:`mai_sr.cli` builds the subcommands from these. Nothing here imports more than the
standard library at import time, so `mai-sr --help` stays fast and TensorFlow-free.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import textwrap
from collections.abc import Sequence
from functools import cached_property

HELP_WIDTH = 100  # the widest `--help` line, however wide the terminal
LONG_CHOICES = 50  # a {a,b,...} list wider than this moves from the option column to its help


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """`--help` at most HELP_WIDTH columns wide (narrower on a narrower terminal).

    Descriptions and examples stay as written; help text wraps between words only (an
    option name or a target such as ethos-u85-256 is never cut at a hyphen); a choice list
    wider than LONG_CHOICES is shown as the option's METAVAR, its values listed in the help
    text, where they wrap, instead of a 150-column option column.
    """

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        if width is None:  # argparse's own margin of 2 columns, within HELP_WIDTH
            width = min(shutil.get_terminal_size().columns, HELP_WIDTH) - 2
        super().__init__(prog, indent_increment, max_help_position, width)

    @staticmethod
    def _long_choices(action) -> bool:
        return (action.metavar is None and action.choices is not None
                and len(",".join(map(str, action.choices))) + 2 > LONG_CHOICES)

    def _metavar_formatter(self, action, default_metavar):
        if self._long_choices(action):
            return lambda tuple_size: (default_metavar,) * tuple_size
        return super()._metavar_formatter(action, default_metavar)

    def _get_help_string(self, action):
        if self._long_choices(action):
            return f"{action.help}; one of: %(choices)s"
        return action.help

    def _split_lines(self, text, width):
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit code 2.

    `add_later(fn)` defers `fn(parser)` until this parser parses or prints help: `bench`
    and `push` take options from the runner classes, whose modules (LiteRT, the flatbuffer
    reader) would otherwise be imported by every `mai-sr` command.
    """

    def __init__(self, *args, formatter_class=HelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)
        self._later = []

    def add_argument(self, *args, **kwargs):
        # argparse formats every new option once to check its metavar, which reads a
        # LibraryChoices list and imports its module (mai_sr.train and mai_sr.importer: about
        # 0.1 s of CPU) in every command, used or not. A placeholder metavar passes that check
        # without reading the list; None restores argparse's own display afterwards.
        if isinstance(kwargs.get("choices"), LibraryChoices) and "metavar" not in kwargs:
            action = super().add_argument(*args, metavar="CHOICE", **kwargs)
            action.metavar = None
            return action
        return super().add_argument(*args, **kwargs)

    def add_later(self, fn) -> None:
        self._later.append(fn)

    def _complete(self) -> None:
        while self._later:
            self._later.pop(0)(self)

    def parse_known_args(self, args=None, namespace=None):
        self._complete()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._complete()
        return super().format_help()

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


# ---------------------------------------------------------------- argument types


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def tile_side(text: str) -> int:
    """--tile: a whole number of LR pixels, 1 to the runtime's MAX_TILE."""
    from mai_sr.tflite.runtime import MAX_TILE

    value = positive_int(text)
    if value > MAX_TILE:
        raise argparse.ArgumentTypeError(f"at most {MAX_TILE} LR pixels a side, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    value = positive_int(text) if text.strip() != "0" else 0
    return value


def size_hw(text: str) -> tuple[int, int]:
    """'HxW' text such as '360x640' -> (height, width), as the challenge writes LR sizes."""
    parts = text.lower().split("x")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected HxW such as 360x640, got {text!r}")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 360x640, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"sizes must be > 0, got {text!r}")
    return h, w


def csv_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items




class LibraryChoices(Sequence):
    """A choice list that is a library constant, read when argparse first needs it (to check
    a value or print help): the modules holding these import NumPy, which `mai-sr --help` and
    the other subcommands need not pay for."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    @cached_property
    def values(self) -> tuple:
        return tuple(getattr(importlib.import_module(self.module), self.name))

    def __getitem__(self, index):
        return self.values[index]

    def __len__(self) -> int:
        return len(self.values)


def examples(*lines: str) -> str:
    """The epilog of a subcommand's --help: its examples, kept as written."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)
