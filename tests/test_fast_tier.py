"""The fast tier's guard (tests/conftest.py): in a run whose -m deselects tf tests, a test
that imports TensorFlow fails, naming itself; whole tf modules are not imported at all."""

import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import _module_marked_tf, _run_excludes_tf

CONFTEST = Path(__file__).resolve().parent / "conftest.py"

SUITE = {
    "test_mixed.py": '''
        import importlib.util
        import pytest

        def test_asks_only():
            assert importlib.util.find_spec("tensorflow") is not None

        def test_imports_tf():
            import tensorflow

        def test_catches_the_error():
            try:
                import tf_keras
            except ImportError:
                pass

        @pytest.fixture
        def keras():
            from tensorflow import keras
            return keras

        def test_fixture_imports_tf(keras):
            pass

        @pytest.mark.tf
        def test_marked():
            import tensorflow
    ''',
    "test_whole_module.py": '''
        import pytest
        import tensorflow

        pytestmark = [pytest.mark.tf, pytest.mark.slow]

        def test_never_collected():
            pass
    ''',
    "test_unmarked_module.py": '''
        import tensorflow

        def test_any():
            pass
    ''',
}


@pytest.mark.parametrize("expr, excludes", [
    ("not tf and not slow", True), ("not tf", True), ("not slow and not tf", True),
    ("(not tf) and slow", True), ("", False), ("not slow", False), ("tf", False),
    ("tf or not slow", False)])
def test_the_guard_is_on_when_the_run_deselects_tf_tests(expr, excludes):
    config = SimpleNamespace(getoption=lambda name, default=None: expr)
    assert _run_excludes_tf(config) is excludes


def test_module_marks_are_read_from_the_source(tmp_path):
    cases = {"pytestmark = pytest.mark.tf\n": True,
             "pytestmark = [pytest.mark.slow, pytest.mark.tf]\n": True,
             "pytestmark = pytest.mark.slow\n": False,
             "import pytest\n\n@pytest.mark.tf\ndef test_x():\n    pass\n": False,
             "pytestmark = (\n": False}
    for i, (source, marked) in enumerate(cases.items()):
        path = tmp_path / f"test_{i}.py"
        path.write_text(source)
        assert _module_marked_tf(path) is marked, source


def test_a_tf_import_fails_the_test_that_makes_it(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST.read_text())
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    tf: TF\n    slow: slow\n")
    for name, source in SUITE.items():
        (tmp_path / name).write_text(textwrap.dedent(source))
    run = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
           "-m", "not tf and not slow"]
    proc = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    out = proc.stdout
    assert proc.returncode == 2 and "ERROR test_unmarked_module.py" in out  # collection error
    assert ("test_unmarked_module.py imports tensorflow at module level in a run that "
            "excludes tf tests") in out
    assert "test_whole_module" not in out  # never imported
    proc = subprocess.run(run + ["test_mixed.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    out = proc.stdout
    summary = [line for line in out.splitlines() if line.startswith(("FAILED", "ERROR"))]
    assert [line.split(" - ")[0] for line in summary] == [
        "FAILED test_mixed.py::test_imports_tf", "FAILED test_mixed.py::test_catches_the_error",
        "ERROR test_mixed.py::test_fixture_imports_tf"], out
    for test in ("test_imports_tf", "test_catches_the_error", "test_fixture_imports_tf"):
        assert f"test_mixed.py::{test} imports tensorflow in a run that excludes tf tests: " \
               "mark it @pytest.mark.tf" in out
    assert "its ImportError was caught by the code under test" in out
    assert "2 failed, 1 passed, 1 deselected, 1 error in " in out
