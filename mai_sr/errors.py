"""The one error type users see.

Library code raises :class:`MaiSrError` for bad input (a file, an argument, a device state);
the CLI prints its message on one line and exits with code 2. Anything else is a bug and
keeps its traceback.
"""


class MaiSrError(Exception):
    """A user-facing error; the message is one line naming the file or argument at fault."""

    exit_code = 2
