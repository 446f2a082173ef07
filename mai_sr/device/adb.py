"""Android devices over adb: the `adb` runner and `mai-sr push`.

The code lives in :mod:`mai_sr.device.android`, one module per concern:

- :mod:`~mai_sr.device.android.client`: the adb client, device discovery and facts;
- :mod:`~mai_sr.device.android.libraries`: what each delegate needs by SoC (Hexagon
  version, QAIRT files, LiteRT dispatch libraries, MediaTek's NeuronAdapter) and file hashes;
- :mod:`~mai_sr.device.android.tools`: the two `benchmark_model`s, told apart by their
  `--help`, each at its own device path;
- :mod:`~mai_sr.device.android.runner`: :class:`AdbRunner`, which runs and judges a benchmark.

This module keeps the names callers import, and pushes models to AI Benchmark's
custom-model slot (the Mobile AI 2022 challenge report, *Efficient and Accurate Quantized
Image Super-Resolution on Mobile NPUs*, Ignatov et al., ECCV 2022 Workshops, section 2.2).
"""

from __future__ import annotations

from mai_sr.device.android.client import (HOW_TO_GET_ADB, Adb, AndroidDevice,  # noqa: F401
                                          add_device_options, device_error, device_facts,
                                          find_adb, list_devices, parse_devices,
                                          parse_getprop, select_devices)
from mai_sr.device.android.libraries import (DISPATCH_LIBRARY_VENDORS,  # noqa: F401
                                             HEXAGON_VERSIONS, NEURON_ADAPTER_LIBRARIES,
                                             QNN_BACKENDS, QNN_PERFORMANCE_MODES,
                                             external_delegate_options, hexagon_version,
                                             key_value_options, npu_libraries,
                                             qairt_libraries, soc_vendor)
from mai_sr.device.android.runner import (DELEGATES, REMOTE_NPU_CACHE,  # noqa: F401
                                          REMOTE_NPU_DIR, REMOTE_QNN_DIR, REMOTE_RESULT,
                                          AdbRunner, apply_benchmark_result)
from mai_sr.device.android.tools import (CLASSIC, LITERT, REMOTE_BINARIES,  # noqa: F401
                                         REMOTE_DIR, TOOL_NAMES, check_binary_abi,
                                         elf_machine, identify_tool)
from mai_sr.device.base import check_model_file

AI_BENCHMARK_MODEL = "/sdcard/Download/model.tflite"  # the file AI Benchmark's PRO mode loads


AI_BENCHMARK_STEPS = """\
Run it in AI Benchmark (Mobile AI 2022 challenge report, section 2.2):
  1. Install AI Benchmark (https://ai-benchmark.com/download or Google Play) and run its
     standard tests once.
  2. Enter PRO Mode and select the Custom Model tab.
  3. The model is already in place: Download/model.tflite, the file name the app loads.
  4. Select the mode (INT8 for these models) and the acceleration option (e.g. NNAPI),
     then run the model."""


def push_model(model_path, *, adb: str | None = None, serial: str | None = None) -> list[str]:
    """Copy a model to /sdcard/Download/model.tflite on the selected device(s), where AI
    Benchmark's PRO-mode Custom Model tab loads it. Returns the serials written."""
    model = check_model_file(model_path)
    client = Adb(adb)
    written = []
    for device in select_devices(list_devices(client), serial):
        device.check_ready()
        client.check("push", str(model), AI_BENCHMARK_MODEL, serial=device.serial,
                     action="push of the model")
        written.append(device.serial)
    return written
