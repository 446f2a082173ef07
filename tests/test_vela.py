"""Arm Ethos-U through the real Vela compiler: bench --runner vela, lint --target ethos-u*,
and export --target's exact rewrite (bit-identical LiteRT outputs, 100% NPU in Vela).

Vela is never mocked: every placement and cycle figure here comes from Vela itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.tflite_factory import prebuilt

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "mai_sr" / "pretrained"
ETHOS_U = {"ethos-u55": "ethos-u55-256", "ethos-u65": "ethos-u65-512",
           "ethos-u85": "ethos-u85-2048"}

pytest.importorskip("ethosu", reason="Vela is in the 'ethosu' and 'test' extras")


def _litert(data: bytes, lr: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], lr[None])
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])[0].copy()


def _inputs(h: int, w: int, real: np.ndarray | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    cases = {"zeros": np.zeros((h, w, 3), np.uint8), "full": np.full((h, w, 3), 255, np.uint8),
             "random": rng.integers(0, 256, (h, w, 3), dtype=np.uint8)}
    if real is not None:
        reps = (-(-h // real.shape[0]), -(-w // real.shape[1]), 1)  # cover h x w
        cases["real"] = np.ascontiguousarray(np.tile(real, reps)[:h, :w])
    return cases


def _rewrite(data: bytes, target: str, **kw) -> bytes:
    from mai_sr.export.targets import rewrite_for_target

    return rewrite_for_target(data, target, **kw)[0]


def _op_types(data: bytes, tmp_path: Path, name: str) -> list[str]:
    from mai_sr.tflite.graph import read_graph

    path = tmp_path / name
    path.write_bytes(data)
    return [op.type for op in read_graph(path).ops]


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    """A tiny x3 INT8 model (conv, conv + nearest-conv anchor, clip, depth-to-space) at an
    odd size, built from raw TF ops (prebuilt in tests/data)."""
    return prebuilt("odd_23x37", tmp_path_factory.mktemp("vela") / "small.tflite")


@pytest.fixture(scope="module")
def real_lr(shared_data) -> np.ndarray:
    from mai_sr.imageio import read_image

    img = read_image(shared_data / "Set14" / "baboon.png")
    return img


# ------------------------------------------------------------------ the rewrite is exact


@pytest.mark.parametrize("form", ["split", "slice", None])
@pytest.mark.parametrize("drop", [False, True])
@pytest.mark.tf
def test_rewrite_is_bit_exact_on_small_odd_model(small_model, form, drop, tmp_path, real_lr):
    data = small_model.read_bytes()
    new = _rewrite(data, "ethos-u65", drop_noop_clips=drop, form=form)
    types = _op_types(new, tmp_path, "new.tflite")
    assert "DEPTH_TO_SPACE" not in types and "CONCATENATION" in types and "RESHAPE" in types
    assert ("SLICE" in types) == (form == "slice")  # the anchor ADD makes "auto" split
    for name, lr in _inputs(23, 37, real_lr).items():
        a, b = _litert(data, lr), _litert(new, lr)
        assert a.shape == b.shape == (69, 111, 3)
        assert np.array_equal(a, b), f"{form} drop={drop}: {name} differs"


@pytest.mark.parametrize("model,form", [("abpn", "split"), ("scsrn", "slice")])
@pytest.mark.tf
@pytest.mark.slow
def test_rewrite_of_shipped_model_is_bit_exact_at_360x640(model, form, real_lr):
    from mai_sr.export.targets import rewrite_for_target

    data = (PRETRAINED / f"{model}.mai_builtin.tflite").read_bytes()
    new, rewrite = rewrite_for_target(data, "ethos-u85")
    assert rewrite.form == form  # SCSRN's conv is its last op: sliced, not split
    for name, lr in _inputs(360, 640, real_lr).items():
        assert np.array_equal(_litert(data, lr), _litert(new, lr)), f"{model}: {name} differs"


@pytest.mark.tf
def test_rewritten_file_tiles_like_the_default(tmp_path, shared_data):
    """TFLiteSR's tiling (fixed-shape file on a larger image) accepts the rewritten file."""
    from mai_sr.imageio import read_image
    from mai_sr.tflite.runtime import TFLiteSR

    src = PRETRAINED / "xcat.mai_builtin.tflite"
    new = tmp_path / "xcat_u65.tflite"
    new.write_bytes(_rewrite(src.read_bytes(), "ethos-u65"))
    lr = read_image(shared_data / "Set14" / "baboon.png")
    lr = np.concatenate([lr, lr], axis=0)[:400]  # taller than 360: several tiles
    assert np.array_equal(TFLiteSR(src).upscale(lr), TFLiteSR(new).upscale(lr))


@pytest.mark.tf
def test_noop_clips_are_only_dropped_when_exact(tmp_path):
    """MINIMUM(x, 127) / RELU(zp -128) go on the shipped models (int8 range = clip range);
    the small model's clip range is not its int8 range, so its clip must stay."""
    data = (PRETRAINED / "ncnet.mai_builtin.tflite").read_bytes()
    types = _op_types(_rewrite(data, "ethos-u55", drop_noop_clips=True), tmp_path, "a.tflite")
    assert "MINIMUM" not in types and "RELU" not in types
    kept = _op_types(_rewrite(data, "ethos-u55", drop_noop_clips=False), tmp_path, "b.tflite")
    assert kept.count("MINIMUM") == 3  # one per split tail


@pytest.mark.tf
def test_rewrite_refuses_float_and_unknown_target(tmp_path):
    from mai_sr.errors import MaiSrError
    from mai_sr.export.targets import rewrite_for_target

    data = prebuilt("float", tmp_path / "f.tflite").read_bytes()
    with pytest.raises(MaiSrError, match="INT8"):
        rewrite_for_target(data, "ethos-u85")
    with pytest.raises(MaiSrError, match="not one of"):
        rewrite_for_target(data, "ethos-u99")


# ------------------------------------------------------------------ Vela: placement


@pytest.mark.parametrize("target", list(ETHOS_U))
@pytest.mark.tf
@pytest.mark.slow
def test_vela_places_every_rewritten_op_on_the_npu(small_model, target, tmp_path):
    from mai_sr.device.vela import compile_model

    default = compile_model(small_model, ETHOS_U[target])
    assert default.cpu_ops == 1 and [c["op"] for c in default.cpu_fallback] == ["DEPTH_TO_SPACE"]
    new = tmp_path / "new.tflite"
    new.write_bytes(_rewrite(small_model.read_bytes(), target))
    out = compile_model(new, ETHOS_U[target])
    assert out.cpu_ops == 0 and out.npu_ops > 0


@pytest.mark.tf
@pytest.mark.slow
def test_lint_target_ethos_u_uses_vela(small_model, tmp_path):
    from mai_sr.cli import lint_exit_code
    from mai_sr.lint import lint_for_target

    report = lint_for_target(small_model, "ethos-u55")
    assert [r["type"] for r in report.cpu_ops] == ["DEPTH_TO_SPACE"]
    assert "Unsupported" in report.cpu_ops[0]["reason"]
    assert lint_exit_code(report) == 2
    new = tmp_path / "new.tflite"
    new.write_bytes(_rewrite(small_model.read_bytes(), "ethos-u55"))
    assert lint_exit_code(lint_for_target(new, "ethos-u55")) == 0
    # the VS680 linter and simulator accept the rewritten file
    assert lint_for_target(new, "vs680").errors == 0
    from mai_sr.device.synap import SynapRunner

    assert SynapRunner().bench(new).avg_ms > 0


# ------------------------------------------------------------------ Vela: bench


def test_bench_vela_layers_sum_to_velas_total(small_model):
    from mai_sr.device import get_runner
    from mai_sr.device.base import schema_errors

    result = get_runner("vela", npu="ethos-u65-512").bench(small_model)
    data = result.to_dict()
    assert schema_errors(data) == []
    assert sum(layer["cycles"] for layer in data["layers"]) == data["delegate"]["cycles_total"]
    assert data["avg_ms"] == pytest.approx(
        data["delegate"]["cycles_total"] / (data["device"]["clock_mhz"] * 1e3), rel=1e-6)
    assert data["device"]["system_config"] == "Ethos_U65_Client_Server"
    assert data["delegate"]["complete"] is False and data["delegate"]["cpu_ops"] == "DEPTH_TO_SPACE"
    assert any("INCOMPLETE" in n and "DEPTH_TO_SPACE" in n for n in data["notes"])


@pytest.mark.slow
def test_bench_vela_cli_text_and_options(small_model, tmp_path):
    env_path = str(ROOT)
    run = subprocess.run(
        [sys.executable, "-m", "mai_sr", "bench", str(small_model), "--runner", "vela",
         "--npu", "ethos-u85-256", "--system-config", "Ethos_U85_SYS_DRAM_High",
         "--memory-mode", "Dedicated_Sram_384KB"],
        cwd=tmp_path, capture_output=True, text=True, env={"PYTHONPATH": env_path,
                                                            "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert "estimated by Vela" in run.stdout and "measured" in run.stdout
    assert "Ethos_U85_SYS_DRAM_High" in run.stdout and "INCOMPLETE" in run.stdout
    assert list(tmp_path.iterdir()) == []  # Vela ran in its own temporary folder


def test_bench_vela_errors_are_one_line(small_model, tmp_path, monkeypatch):
    from mai_sr.device import vela
    from mai_sr.errors import MaiSrError

    with pytest.raises(MaiSrError) as failed:
        vela.VelaRunner(npu="ethos-u55-128", system_config="No_Such_Config").bench(small_model)
    assert str(failed.value).startswith("vela failed: ") and "\n" not in str(failed.value)
    assert "No_Such_Config" in str(failed.value)
    with pytest.raises(MaiSrError, match="float model"):
        vela.VelaRunner().bench(prebuilt("float", tmp_path / "f.tflite"))
    monkeypatch.setattr(vela, "vela_version", lambda: None)
    with pytest.raises(MaiSrError, match=r"mai-sr\[ethosu\]"):
        vela.VelaRunner().bench(small_model)


# ------------------------------------------------------------------ export --target


@pytest.mark.tf
@pytest.mark.slow
def test_export_target_records_rewrite_and_matches_default(tmp_path, monkeypatch):
    """The CLI path: a shipped model exported at an odd size, with and without --target."""
    from mai_sr.export.convert import export
    from mai_sr.tflite.artifacts import read_metadata, read_sidecar

    plain = export(tmp_path / "scsrn.tflite", pretrained="scsrn", shape=(45, 61))[0]
    target = export(tmp_path / "scsrn_u65.tflite", pretrained="scsrn", shape=(45, 61),
                    target="ethos-u65")[0]
    for meta in (read_sidecar(target), read_metadata(target)):
        assert meta["target"]["target"] == "ethos-u65"
        assert meta["target"]["depth_to_space_replaced"] == 1
    assert "target" not in read_sidecar(plain)
    for name, lr in _inputs(45, 61).items():
        assert np.array_equal(_litert(plain.read_bytes(), lr), _litert(target.read_bytes(), lr))
    _check_lint_of_exports(plain, target, monkeypatch)


def _check_lint_of_exports(plain: Path, target: Path, monkeypatch) -> None:
    """lint of a file exported for ethos-u65 judges it for ethos-u65 by default (its
    provenance says so); without Vela it names the command instead; a plain file is linted
    for the VS680 and NNAPI as before."""
    from mai_sr.cli import lint_exit_code
    from mai_sr.device import vela
    from mai_sr.lint import LintReport, TargetLintReport, lint_file

    report = lint_file(target)
    assert isinstance(report, TargetLintReport) and report.target == "ethos-u65"
    assert report.exported_for == "ethos-u65" and report.cpu_ops == []
    assert lint_exit_code(report) == 0
    assert "exported for ethos-u65 (the file's provenance): linted for ethos-u65" in \
        " ".join(report.format_table(80).split())
    assert lint_file(target, "vs680").target == "vs680"
    plain_report = lint_file(plain)
    assert isinstance(plain_report, LintReport) and plain_report.exported_for is None
    monkeypatch.setattr(vela, "vela_version", lambda: None)
    without_vela = lint_file(target)
    assert isinstance(without_vela, LintReport) and without_vela.exported_for == "ethos-u65"
    assert "exported for ethos-u65: run mai-sr lint --target ethos-u65" in \
        without_vela.format_table(80)


@pytest.mark.tf
def test_export_target_refuses_float_and_dynamic(tmp_path):
    from mai_sr.errors import MaiSrError
    from mai_sr.export.convert import export

    with pytest.raises(MaiSrError, match="--precision int8"):
        export(tmp_path / "a.tflite", pretrained="abpn", precision="fp32", target="ethos-u85")
    with pytest.raises(MaiSrError, match="fixed"):
        export(tmp_path / "a.tflite", pretrained="abpn", dynamic=True, target="ethos-u85")
    assert list(tmp_path.iterdir()) == []


def test_model_card_carries_velas_estimate(small_model):
    """The report's model card gets a `vela` field (ms, NPU op share, CPU ops); the score
    still comes from an NPU runner, never from Vela."""
    from mai_sr.device import get_runner
    from mai_sr.report.cards import build_model_card

    result = get_runner("vela", npu="ethos-u55-128").bench(small_model)
    card = build_model_card("small", tflite=small_model, bench_results=[result])
    vela = card["vela"]
    assert vela["npu"] == "ethos-u55-128" and vela["ms"] == pytest.approx(result.avg_ms)
    assert vela["complete"] is False and vela["cpu_ops"] == "DEPTH_TO_SPACE"
    assert 0 < vela["npu_op_percent"] < 100
    assert card["score"]["runner"] is None
    assert build_model_card("small", tflite=small_model)["vela"] is None


# ------------------------------------------------------------------ Vela: bounds


@pytest.mark.parametrize("env,value,limit", [("MAI_SR_VELA_TIMEOUT", "0.01", "time limit (0.01 s"),
                                             ("MAI_SR_VELA_MEMORY_GB", "0.05",
                                              "memory limit (0.05 GB")])
@pytest.mark.slow
def test_vela_stops_at_its_limits_with_one_line(env, value, limit, monkeypatch, tmp_path):
    """Tiny limits, so the real Vela meets them at once: bench and lint --target each stop
    with exit 2 and one line naming the limit (and the variable that raises it)."""
    from mai_sr.device.vela import compile_model
    from mai_sr.errors import MaiSrError

    monkeypatch.setenv(env, value)
    with pytest.raises(MaiSrError) as stopped:
        compile_model(PRETRAINED / "abpn.mai_builtin.tflite", "ethos-u55-256")
    assert limit in str(stopped.value) and env in str(stopped.value)
    for argv in (["bench", "--pretrained", "abpn", "--runner", "vela"],
                 ["lint", str(PRETRAINED / "abpn.mai_builtin.tflite"), "--target", "ethos-u85"]):
        run = subprocess.run([sys.executable, "-m", "mai_sr", *argv], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120,
                             env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", env: value})
        assert run.returncode == 2 and run.stdout == ""
        assert run.stderr.count("\n") == 1 and limit in run.stderr, run.stderr


def test_vela_limits_default_and_bad_values(monkeypatch):
    from mai_sr.device import vela
    from mai_sr.errors import MaiSrError

    monkeypatch.delenv("MAI_SR_VELA_TIMEOUT", raising=False)
    monkeypatch.delenv("MAI_SR_VELA_MEMORY_GB", raising=False)
    assert vela.vela_limits() == (vela.VELA_TIMEOUT_S, vela.VELA_MEMORY_BYTES)
    monkeypatch.setenv("MAI_SR_VELA_MEMORY_GB", "1.5")
    assert vela.vela_limits()[1] == int(1.5 * 2**30)
    for bad in ("abc", "0", "-3", "inf"):
        monkeypatch.setenv("MAI_SR_VELA_TIMEOUT", bad)
        with pytest.raises(MaiSrError, match="MAI_SR_VELA_TIMEOUT"):
            vela.vela_limits()


def test_default_limits_leave_room_for_a_shipped_model():
    """A shipped model compiles within a tenth of both default limits (measured in a fresh
    process, whose only child is Vela)."""
    from mai_sr.device import vela

    code = ("import resource, time; from mai_sr.device.vela import compile_model; "
            "start = time.monotonic(); "
            f"compile_model({str(PRETRAINED / 'xcat.mai_builtin.tflite')!r}, 'ethos-u55-256'); "
            "print(time.monotonic() - start, "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    seconds, peak_kb = (float(v) for v in run.stdout.split())
    assert seconds < vela.VELA_TIMEOUT_S / 10
    assert 0 < peak_kb * 1024 < vela.VELA_MEMORY_BYTES / 10


# ------------------------------------------------------------------ Vela: dynamic shapes


@pytest.mark.slow
def test_bench_vela_times_a_dynamic_file_at_its_timing_input(tmp_path):
    """The dynamic twin of a shipped model gets the estimate of its fixed 360x640 file (the
    same network converted at the timing input), with a note saying so."""
    from mai_sr.device import get_runner

    runner = get_runner("vela", npu="ethos-u85-256")
    fixed = runner.bench(PRETRAINED / "ncnet.mai_builtin.tflite")
    dynamic = runner.bench(PRETRAINED / "ncnet.mai_builtin_none.tflite")
    assert dynamic.avg_ms > 1
    assert dynamic.delegate["cycles_total"] == fixed.delegate["cycles_total"]
    assert dynamic.avg_ms == pytest.approx(fixed.avg_ms)
    assert any("dynamic input shape: estimated at its scale's timing input 1x360x640x3" in n
               for n in dynamic.notes)
    assert not any("dynamic" in n for n in fixed.notes)
    run = subprocess.run([sys.executable, "-m", "mai_sr", "bench", "--runner", "vela",
                          str(PRETRAINED / "ncnet.mai_builtin_none.tflite")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert "timing input 1x360x640x3" in run.stdout and "0.00 ms" not in run.stdout


def test_dynamic_file_whose_shapes_cannot_be_fixed_is_refused(tmp_path):
    """A dynamic graph that computes a resize size at run time (SHAPE, int32 arithmetic):
    one line, never a 0.00 ms estimate."""
    from mai_sr.device.vela import compile_model
    from mai_sr.errors import MaiSrError

    path = prebuilt("dynamic_resize", tmp_path / "dyn_resize.tflite")
    with pytest.raises(MaiSrError, match="dynamic input shape and .*SHAPE.*fixed-shape") as no:
        compile_model(path, "ethos-u65-256")
    assert "\n" not in str(no.value)


# ------------------------------------------------------------------ lint: op counts, fixes


def test_lint_target_counts_tflite_ops_and_velas_own(small_model):
    """lint --target counts the file's TFLite ops and states Vela's own count, which is the
    count bench --runner vela reports for the same configuration."""
    from mai_sr.device import get_runner
    from mai_sr.lint import lint_for_target
    from mai_sr.tflite.graph import read_graph

    report = lint_for_target(small_model, "ethos-u65")
    bench = get_runner("vela", npu="ethos-u65-512").bench(small_model)
    n = len(read_graph(small_model).ops)
    assert len(report.rows) == n
    assert report.vela_ops == (bench.delegate["delegated_nodes"], bench.delegate["total_nodes"])
    text = report.format_table(80)
    assert f"{n - 1}/{n} TFLite ops on the NPU" in text
    assert f"Vela's own count, after it fuses ops: {report.vela_ops[0]}/{report.vela_ops[1]}" \
        in " ".join(text.split())
    assert max(len(line) for line in text.splitlines()) <= 80
    d2s = report.cpu_ops[0]
    assert d2s["type"] == "DEPTH_TO_SPACE"
    assert "mai-sr export" in d2s["fix"] and "--target ethos-u65" in d2s["fix"]
