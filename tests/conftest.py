"""Shared test fixtures.

Real images live in ../shared/data beside the checkout (never copied into the project).
Set MAI_SR_DATA to point elsewhere.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MAI_SR_DATA", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder holding Set5, Set14, B100, T91, BSD200."""
    if not (SHARED_DATA / "Set14").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}: put ../shared/data beside the "
                    "checkout or set MAI_SR_DATA")
    return SHARED_DATA


SHARED_ARTIFACTS = Path(os.environ.get("MAI_SR_ARTIFACTS",
                                       ROOT.parent / "shared" / "artifacts")).resolve()


@pytest.fixture(scope="session")
def shared_artifacts() -> Path:
    """Folder of real published models (nju_abpn, megsr_ncnet, etds_abpn; see its SOURCES.md)."""
    if not (SHARED_ARTIFACTS / "SOURCES.md").is_file():
        pytest.skip(f"published models not found at {SHARED_ARTIFACTS}: put ../shared/artifacts "
                    "beside the checkout or set MAI_SR_ARTIFACTS")
    return SHARED_ARTIFACTS


def link_images(folder: Path, shared_data: Path, names) -> Path:
    """A folder of symlinks to real images in the shared data (never copies), e.g.
    ``link_images(tmp, shared_data, ["Set5/bird.png"])``; returns the folder."""
    for name in names:
        (folder / Path(name).name).symlink_to(shared_data / name)
    return folder


def zoo_checkpoint(name: str) -> Path:
    """The ETDS zoo's published checkpoint `name` (``ECBSR_M4C16_x3``, ``ABPN_ET_M4C28_x3``:
    under its family's folder), or a skip saying it is absent."""
    path = SHARED_ARTIFACTS / "etds_zoo" / "pretrained" / name.split("_")[0] / f"{name}.pth"
    if not path.is_file():
        pytest.skip(f"{path} not present: put ../shared/artifacts beside the checkout")
    return path


def import_in_both_layouts(checkpoint: Path, model: str, folder: Path, shared_data: Path):
    """The deploy nets `checkpoint` imports into (as placed, and with ``--model`` `model`, a
    layout option), after checking both on a real Set14 image: the option says which layout
    it is and computes the same network (to 1e-4 of the pixel range). Returns (plain, option,
    import result of the option)."""
    import numpy as np

    from mai_sr.data import iter_pairs
    from mai_sr.importer import import_weights
    from mai_sr.runs import load_deploy_weights

    nets = []
    for target in (None, model):
        out = folder / f"{target}.weights.h5"
        result = import_weights(checkpoint, target, out)
        nets.append(load_deploy_weights(out, result.model, result.scale))
    assert result.model == model and result.scale == int(checkpoint.stem[-1])
    assert any(f"laid out as {model}" in note for note in result.notes)
    lr = next(iter(iter_pairs(shared_data / "Set14", scale=result.scale))).lr
    plain, option = (np.asarray(net(lr[None].astype(np.float32))) for net in nets)
    assert plain.std() > 10  # a real image, not a constant
    assert np.abs(plain - option).max() <= 1e-4 * 255
    return nets[0], nets[1], result


def ptq_drops_on_set5(checkpoint: Path, models, folder: Path, shared_data: Path,
                      check_graph=None) -> dict:
    """Per registry name in `models`: the Set5 RGB PSNR (crop 3) of the float deploy model
    minus that of its PTQ file, both made from `checkpoint` by the CLI as a user would
    (``mai-sr import --model NAME``, ``mai-sr export --dynamic`` with the default calibration,
    the builtin photos), scored with scikit-image's PSNR through mai-sr's scorer. Every
    tensor of each file is integer; `check_graph(name, graph)` sees each file's graph."""
    import subprocess
    import sys

    import numpy as np

    from mai_sr.data import iter_pairs
    from mai_sr.metrics import psnr
    from mai_sr.runs import load_deploy_weights
    from mai_sr.tflite.graph import read_graph
    from mai_sr.tflite.runtime import TFLiteSR

    def cli(*argv):
        proc = subprocess.run([sys.executable, "-m", "mai_sr", *argv], cwd=ROOT,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-2000:]

    pairs = list(iter_pairs(shared_data / "Set5", scale=3))
    drops = {}
    for model in models:
        weights = folder / f"{model}.weights.h5"
        cli("import", str(checkpoint), "--model", model, "--out", str(weights))
        cli("export", str(folder / f"{model}.tflite"), "--model", model, "--weights",
            str(weights), "--shape", "24x32", "--dynamic")
        dynamic = folder / f"{model}_none.tflite"
        graph = read_graph(dynamic)
        assert {t.dtype for t in graph.tensors} <= {"int8", "uint8", "int32"}
        if check_graph is not None:
            check_graph(model, graph)
        net, int8 = load_deploy_weights(weights, model, 3), TFLiteSR(dynamic)
        fp32 = [np.clip(np.rint(np.asarray(net(p.lr[None].astype(np.float32)))[0]), 0, 255)
                .astype(np.uint8) for p in pairs]
        drops[model] = float(np.mean([psnr(f, p.hr, crop=3) - psnr(int8.upscale(p.lr), p.hr,
                                                                     crop=3)
                                      for f, p in zip(fp32, pairs)]))
    return drops


@pytest.fixture(autouse=True)
def _private_cache(monkeypatch, tmp_path_factory):
    """Tests never read or fill the user's ~/.cache/mai-sr (eval's bicubic baselines): one
    cache for the whole test session, in pytest's temp folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


# ------------------------------------------------------------------ the TF-free tier's guard
# `pytest -m "not tf and not slow"` is the fast tier: it must not load TensorFlow (about 10 s
# of import, and the TF-free commands promise not to need it). When the run's -m expression
# deselects a test marked only `tf`, an import of tensorflow while a test is set up, runs or
# is torn down fails that test with a message naming it; an import while a test module is
# collected is that module's collection error. Whole modules marked `pytestmark =
# pytest.mark.tf` are not even imported in such a run (read from their source).

import ast  # noqa: E402
import importlib.abc  # noqa: E402
import importlib.machinery  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402

BLOCKED_TOP_LEVEL = ("tensorflow",)  # tf_keras and tfmot import it in their turn


def _run_excludes_tf(config) -> bool:
    """True when -m deselects a test marked only `tf` (e.g. "not tf", "not tf and not slow")."""
    expr = config.getoption("markexpr", "") or ""
    if not expr:
        return False
    try:
        from _pytest.mark.expression import Expression

        return not Expression.compile(expr).evaluate(lambda name, **kwargs: name == "tf")
    except Exception:  # pytest's private parser moved: read the expression by hand
        return re.search(r"\bnot\s+tf\b", expr) is not None


def _module_marked_tf(path: Path) -> bool:
    """The test module assigns `pytestmark` at top level, and it includes `pytest.mark.tf`."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return False  # let pytest collect it and report the problem itself
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) and node.value else []
        if any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets):
            return any(isinstance(n, ast.Attribute) and n.attr == "tf"
                       and isinstance(n.value, ast.Attribute) and n.value.attr == "mark"
                       for n in ast.walk(node.value))
    return False


class TensorFlowBlocker(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """First finder on sys.meta_path: any import of a BLOCKED_TOP_LEVEL module is recorded
    against the current test (or module being collected) and raises ImportError at load time.

    `importlib.util.find_spec` still answers (a spec is returned), so code that only asks
    whether TF is installed is not counted; loading it is. Recording matters because code
    under test may catch the ImportError and carry on: the test still fails.
    """

    def __init__(self):
        self.where = None      # nodeid of the running test, or "collecting <module>"
        self.attempts = {}     # where -> first module name imported there

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] not in BLOCKED_TOP_LEVEL:
            return None
        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec):
        where = self.where or "code outside any test"
        self.attempts.setdefault(where, spec.name)
        raise ImportError(self.message(where, spec.name), name=spec.name)

    def exec_module(self, module):  # never reached: create_module raises
        raise ImportError(f"{module.__name__} is blocked in a run without tf tests")

    @staticmethod
    def message(where: str, module: str) -> str:
        if where.startswith("collecting "):
            return (f"{where[len('collecting '):]} imports {module} at module level in a run "
                    "that excludes tf tests: mark the module `pytestmark = pytest.mark.tf` or "
                    "move the import into its tf tests")
        return (f"{where} imports {module} in a run that excludes tf tests: mark it "
                "@pytest.mark.tf (TensorFlow stays out of `pytest -m \"not tf\"`)")

    def install(self):
        """Put the blocker first on sys.meta_path (again, if a library inserted before it)."""
        if sys.meta_path and sys.meta_path[0] is self:
            return
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        sys.meta_path.insert(0, self)


_BLOCKER = TensorFlowBlocker()


def _tf_loaded() -> bool:
    return any(name in sys.modules for name in BLOCKED_TOP_LEVEL)


def pytest_configure(config):
    if not _run_excludes_tf(config):
        return
    config._tf_blocker = _BLOCKER
    if _tf_loaded():
        config.issue_config_time_warning(pytest.PytestConfigWarning(
            "tensorflow was imported before the tests started (a plugin or conftest): the "
            "guard of the TF-free tier cannot see test imports in this run"), stacklevel=2)
    _BLOCKER.install()


def pytest_unconfigure(config):
    if getattr(config, "_tf_blocker", None) is not None and _BLOCKER in sys.meta_path:
        sys.meta_path.remove(_BLOCKER)


def pytest_ignore_collect(collection_path, config):
    if (getattr(config, "_tf_blocker", None) is not None and collection_path.suffix == ".py"
            and collection_path.name.startswith("test_") and _module_marked_tf(collection_path)):
        return True
    return None


def pytest_collectstart(collector):
    if getattr(collector.config, "_tf_blocker", None) is not None and \
            isinstance(collector, pytest.Module):
        _BLOCKER.where = f"collecting {collector.nodeid}"
        _BLOCKER.install()


def pytest_collection_finish(session):
    _BLOCKER.where = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if getattr(item.config, "_tf_blocker", None) is None:
        return (yield)
    _BLOCKER.install()
    _BLOCKER.where = item.nodeid
    item._tf_loaded_before = _tf_loaded()
    try:
        return (yield)
    finally:
        _BLOCKER.where = None
        _BLOCKER.attempts.pop(item.nodeid, None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if getattr(item.config, "_tf_blocker", None) is None:
        return report
    module = _BLOCKER.attempts.pop(item.nodeid, None)  # this phase's attempt, reported once
    if not report.passed:
        return report
    if module is None and call.when == "teardown" and not item._tf_loaded_before \
            and _tf_loaded():
        module = "tensorflow"  # loaded past the blocker (sys.meta_path edited): still caught
    if module is not None:
        report.outcome = "failed"
        report.longrepr = TensorFlowBlocker.message(item.nodeid, module) + \
            " (its ImportError was caught by the code under test)"
    return report
