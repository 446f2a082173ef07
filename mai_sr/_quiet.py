"""Hiding what C++ libraries (TensorFlow, its converter, LiteRT) write to file descriptor 2.

Their start-up and notice lines bypass Python's logging and the libraries' own log levels,
so the descriptor itself is the only switch. ``MAI_SR_TF_LOGS=1`` shows everything.
"""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def stderr_silenced():
    """Point file descriptor 2 at /dev/null for the block, unless ``MAI_SR_TF_LOGS=1``.

    Yields whether it is silenced. Exceptions still propagate, after stderr is restored.
    """
    if os.environ.get("MAI_SR_TF_LOGS") == "1":
        yield False
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield True
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
