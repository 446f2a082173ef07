"""The one error type users see, and the one way an exception becomes a line of text.

Library code raises :class:`MaiSrError` for bad input (a file, an argument, a device state);
the CLI prints its message on one line and exits with code 2. Anything else is a bug and
keeps its traceback.
"""


class MaiSrError(Exception):
    """A user-facing error; the message is one line naming the file or argument at fault."""

    exit_code = 2


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first non-blank line of `exc`'s message (TensorFlow's, h5py's, zipfile's and
    LiteRT's errors run over many lines), or the exception's type name when the message is
    empty. `limit` cuts the line to that many characters."""
    text = str(getattr(exc, "message", None) or exc).strip()
    line = text.splitlines()[0].strip() if text else type(exc).__name__
    return line[:limit] if limit else line
