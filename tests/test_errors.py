"""The one-line text of an exception (mai_sr.errors.first_line)."""

from mai_sr.errors import first_line


def test_first_line_is_the_first_non_blank_line_or_the_type_name():
    assert first_line(ValueError("\n  converter failed: op X\n  at line 3\n")) == \
        "converter failed: op X"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(OSError("   ")) == "OSError"
    assert first_line(RuntimeError("x" * 300), 120) == "x" * 120


def test_first_line_reads_the_message_attribute_tensorflow_errors_carry():
    class OpError(Exception):
        def __init__(self, message):
            super().__init__(None, None, message)  # str() of this is a tuple, not the text
            self.message = message

    assert first_line(OpError("Failed to create a directory: /x\n\tdetail")) == \
        "Failed to create a directory: /x"
