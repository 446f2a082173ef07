"""The ahead-of-time route to a phone's NPU: LiteRT's `ai_edge_litert.aot.aot_compile`.

AOT compilation runs the SoC vendor's compiler (Qualcomm's QAIRT through the
`ai_edge_litert_sdk_qualcomm` package, MediaTek's NeuroPilot, ...), which this machine cannot
fetch. What can be checked here: the module mai-sr's README points to exists in the
installed ai-edge-litert, and without the vendor's SDK it compiles nothing and says why in
one line, rather than producing a model that would only run on the CPU.
"""

import importlib.util

import pytest


def test_the_aot_module_exists_in_the_installed_litert():
    assert importlib.util.find_spec("ai_edge_litert.aot.aot_compile") is not None
    from ai_edge_litert.aot.vendors.mediatek import target as mediatek_target
    from ai_edge_litert.aot.vendors.qualcomm import target as qualcomm_target

    assert hasattr(qualcomm_target.SocModel, "SM8650")
    assert hasattr(mediatek_target, "Target")


@pytest.mark.slow
def test_without_the_vendor_sdk_aot_compile_fails_in_one_line(capsys):
    if importlib.util.find_spec("ai_edge_litert_sdk_qualcomm") is not None:
        pytest.skip("Qualcomm's SDK package is installed: the compilation would run")
    from ai_edge_litert.aot import aot_compile
    from ai_edge_litert.aot.vendors.qualcomm import target as qualcomm_target

    from mai_sr.pretrained import pretrained_path

    result = aot_compile.aot_compile(
        str(pretrained_path("abpn", "fixed")),
        target=qualcomm_target.Target(qualcomm_target.SocModel.SM8650), keep_going=True)
    assert result.models_with_backend == []
    ((backend, error),) = result.failed_backends
    assert backend.id() == "qualcomm" and "\n" not in error
    assert error.startswith("apply_plugin failed to apply plugin")
