"""What each delegate needs on the device, by SoC: the vendor, the Hexagon version of a
Snapdragon, the QAIRT SDK's files for the QNN delegate, the LiteRT dispatch / compiler-plugin
libraries and vendor runtime for the NPU (Qualcomm's QNN HTP, MediaTek's NeuroPilot), and
the hashes that decide whether a file on the device is already the local one.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from mai_sr.errors import MaiSrError

# SoC -> Hexagon (HTP) architecture of its skel/stub libraries: LiteRT-CLI
# (google-ai-edge/LiteRT-CLI, litert_cli/core/constants.py QNN_SOC_VERSION_MAP); SM8475 from
# the same HTP generation as SM8450 (ExecuTorch's Qualcomm examples).
HEXAGON_VERSIONS = {"SM8350": "68", "SM8450": "69", "SM8475": "69", "SM8550": "73",
                    "SM8650": "75", "SM8750": "79", "SM8850": "81"}
# QNN delegate htp_performance_mode values (Qualcomm AI Engine Direct Delegate, "External
# Delegate Options"): the number the delegate parses, by name.
QNN_PERFORMANCE_MODES = {"default": 0, "sustained_high_performance": 1, "burst": 2,
                         "high_performance": 3, "power_saver": 4, "low_power_saver": 5,
                         "high_power_saver": 6, "low_balanced": 7, "balanced": 8}
QNN_BACKENDS = ("htp", "gpu")
# Vendor flags of the CompiledModel tool (litert/tools/flags/vendors/*_flags.cc).
VENDOR_FLAG_PREFIXES = ("qualcomm_", "mediatek_", "google_tensor_", "samsung_")
DISPATCH_LIBRARY_VENDORS = {"qualcomm": "Qualcomm", "mediatek": "MediaTek",
                            "google": "GoogleTensor", "samsung": "Samsung"}
# NeuroPilot's NeuronAdapter libraries in the order LiteRT's MediaTek dispatch tries them
# (google-ai-edge/LiteRT, litert/vendors/mediatek/neuron_adapter_api.cc,
# NeuronAdapterApi::LoadSymbols: by name through the linker's search path, then
# libneuron_adapter.so in the dispatch folder).
NEURON_ADAPTER_LIBRARIES = ("libneuronusdk_adapter.mtk.so", "libneuronusdk_adapter.9.mtk.so",
                            "libneuronusdk_adapter.so", "libneuron_adapter_mgvi.so",
                            "libneuron_adapter.so")
# Where a MediaTek phone's system image keeps its own copy.
SYSTEM_LIBRARY_DIRS = ("/system/lib64", "/system_ext/lib64", "/vendor/lib64")
# The adapter each NeuroPilot SDK version ships, by its path in the SDK archive LiteRT-CLI
# downloads (google-ai-edge/LiteRT-CLI, litert_cli/core/npu_utils.py _get_mediatek_libs).
NEUROPILOT_ADAPTERS = {"v8": "neuro_pilot/v8_0_10/usdk/lib64/libneuronusdk_adapter.mtk.so",
                       "v9": "neuro_pilot/v9_0_3/usdk/lib64/libneuronusdk_adapter.so"}
FLAG_NAME = re.compile(r"[a-z][a-z0-9_]*")
FLAG_VALUE = re.compile(r"[A-Za-z0-9._/:,+-]+")
_HASH_LINE = re.compile(r"^([0-9a-f]{32}|[0-9a-f]{64})\s+(\S.*)$")


def soc_vendor(facts: dict) -> str | None:
    """qualcomm | mediatek | google | samsung, from ro.soc.manufacturer or the SoC name."""
    maker = (facts.get("soc_manufacturer") or "").lower()
    soc = (facts.get("soc") or "").lower()
    if maker in ("qti", "qualcomm") or re.match(r"(sm|sdm|qcs|qcm|sa)\d", soc):
        return "qualcomm"
    if maker == "mediatek" or re.match(r"mt\d", soc):
        return "mediatek"
    if maker == "google" or re.match(r"(gs\d|zuma|tensor)", soc):
        return "google"
    if maker in ("samsung", "slsi") or re.match(r"(s5e|exynos)", soc):
        return "samsung"
    return None


def hexagon_version(facts: dict, override: str | None = None) -> str:
    """The Hexagon (HTP) version whose stub/skel libraries the device's SoC loads."""
    if override:
        return override
    soc = (facts.get("soc") or "").upper()
    if soc in HEXAGON_VERSIONS:
        return HEXAGON_VERSIONS[soc]
    known = ", ".join(f"{k} v{v}" for k, v in HEXAGON_VERSIONS.items())
    raise MaiSrError(f"device {facts['serial']}: SoC {soc or '(unknown)'} has no known Hexagon "
                     f"version (known: {known}); pass --hexagon-version NN")


def key_value_options(items, what: str) -> list[tuple[str, str]]:
    """KEY=VALUE strings -> pairs. The key must be a flag-like name; the value is checked by
    whoever passes it on (it reaches the device as one quoted word either way)."""
    pairs = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not FLAG_NAME.fullmatch(key):
            raise MaiSrError(f"{what} {item!r}: expected KEY=VALUE with a lower-case key "
                             "(letters, digits, _)")
        pairs.append((key, value))
    return pairs


def external_delegate_options(options: list[tuple[str, str]]) -> str:
    """The `k:v;k:v` string of --external_delegate_options.

    tflite/tools/delegates/external_delegate_provider.cc splits it on ';', then each item on
    ':', and silently drops an item that does not split into exactly two parts: an empty
    value, a value holding ':' or ';', or a key holding one. Those are refused here, so no
    option is lost without a word.
    """
    items = []
    for key, value in options:
        for part, name in ((key, "name"), (value, "value")):
            if not part or ":" in part or ";" in part:
                raise MaiSrError(f"QNN delegate option {key}={value}: the {name} "
                                 f"{'is empty' if not part else 'contains : or ;'}, so "
                                 "benchmark_model's option parser would drop it silently")
        items.append(f"{key}:{value}")
    return ";".join(items)


def _find_library(root: Path, name: str, *subdirs: str) -> Path | None:
    """`name` in one of root/<subdir> (QAIRT SDK layout) or directly in root."""
    for sub in subdirs + ("",):
        path = root / sub / name if sub else root / name
        if path.is_file():
            return path
    return None


def qairt_libraries(root: Path, backend: str, hexagon: str) -> list[Path]:
    """The local QAIRT files the QNN delegate needs on the device (SDK layout
    lib/aarch64-android and lib/hexagon-vNN/unsigned, or all in one folder)."""
    android = "lib/aarch64-android"
    names = ["libQnnTFLiteDelegate.so", "libQnnSystem.so"]
    if backend == "htp":
        names += ["libQnnHtp.so", "libQnnHtpPrepare.so", f"libQnnHtpV{hexagon}Stub.so"]
    else:
        names += ["libQnnGpu.so"]
    found, missing = [], []
    for name in names:
        path = _find_library(root, name, android)
        (found if path else missing).append(path or name)
    if backend == "htp":
        skel = f"libQnnHtpV{hexagon}Skel.so"
        path = _find_library(root, skel, f"lib/hexagon-v{hexagon}/unsigned")
        if path:
            found.append(path)
        else:
            have = sorted(p.name for p in root.glob("lib/hexagon-v*"))
            missing.append(f"lib/hexagon-v{hexagon}/unsigned/{skel}"
                           + (f" (the folder has {', '.join(have)})" if have else ""))
    if missing:
        raise MaiSrError(f"--qairt {root}: missing {', '.join(map(str, missing))} "
                         f"(needed for the QNN {backend} backend on Hexagon v{hexagon})")
    return found


def npu_libraries(folder: Path, facts: dict, hexagon: str | None,
                  system_adapters: list[str] | None = None) -> tuple[list[Path], bool]:
    """The .so files of --npu-libs to push, and whether a compiler plugin (on-device
    compilation) is among them. Refuses a folder without the SoC vendor's dispatch library,
    (Qualcomm) without the skel of the SoC's Hexagon version, or (MediaTek) without a
    NeuronAdapter library when the phone has none either (`system_adapters`: those found
    on the device, :func:`system_neuron_adapters`)."""
    libs = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == ".so")
    dispatch = [p.name for p in libs if p.name.startswith("libLiteRtDispatch_")]
    vendor = soc_vendor(facts)
    wanted = f"libLiteRtDispatch_{DISPATCH_LIBRARY_VENDORS[vendor]}.so" if vendor else None
    if not dispatch or (wanted and wanted not in dispatch):
        raise MaiSrError(f"--npu-libs {folder}: no {wanted or 'libLiteRtDispatch_*.so'} "
                         f"(device {facts['serial']} has SoC {facts.get('soc')}"
                         f"{', ' + vendor if vendor else ''}; the folder has "
                         f"{', '.join(dispatch) or 'no dispatch library'})")
    if vendor == "qualcomm" and hexagon:
        for name in (f"libQnnHtpV{hexagon}Skel.so", f"libQnnHtpV{hexagon}Stub.so", "libQnnHtp.so"):
            if not (folder / name).is_file():
                raise MaiSrError(f"--npu-libs {folder}: no {name} (SoC {facts.get('soc')} "
                                 f"runs Hexagon v{hexagon}; copy it from the QAIRT SDK)")
    if vendor == "mediatek":
        check_neuron_adapter(folder, facts, system_adapters or [])
    plugin = any(p.name.startswith("libLiteRtCompilerPlugin_") for p in libs)
    return libs, plugin


def check_neuron_adapter(folder: Path, facts: dict, system_adapters: list[str]) -> str:
    """The NeuronAdapter library LiteRT's MediaTek dispatch will load: one in --npu-libs
    (pushed beside the dispatch library, on LD_LIBRARY_PATH) or one of the phone's own. A
    one-line error naming the candidates and where they come from when there is none."""
    for name in NEURON_ADAPTER_LIBRARIES:
        if (folder / name).is_file():
            return name
    if system_adapters:
        return system_adapters[0]
    sdk = "; ".join(f"NeuroPilot {v}: {path}" for v, path in NEUROPILOT_ADAPTERS.items())
    raise MaiSrError(f"--npu-libs {folder}: no NeuroPilot NeuronAdapter library, and device "
                     f"{facts['serial']} (SoC {facts.get('soc')}, MediaTek) has none in "
                     f"{', '.join(SYSTEM_LIBRARY_DIRS)}: copy {' or '.join(NEURON_ADAPTER_LIBRARIES[:3])} "
                     f"from MediaTek's NeuroPilot SDK ({sdk})")


def system_neuron_adapters(listing: str) -> list[str]:
    """The NeuronAdapter libraries an `ls` of SYSTEM_LIBRARY_DIRS found on the device
    (`ls` prints the paths that exist; its complaints about the others are skipped)."""
    found = []
    for line in listing.splitlines():
        path = line.strip()
        if path.startswith("/") and path.rsplit("/", 1)[-1] in NEURON_ADAPTER_LIBRARIES:
            found.append(path)
    return found


def neuron_adapter_paths() -> list[str]:
    """Every place a MediaTek phone's own NeuronAdapter library may be."""
    return [f"{d}/{n}" for d in SYSTEM_LIBRARY_DIRS for n in NEURON_ADAPTER_LIBRARIES]


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of a local file (sha256 or md5, as the device's tool computes it)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_hash_lines(text: str) -> dict[str, str]:
    """`sha256sum`/`md5sum` output ("HEX  PATH" lines) -> {path: hex}; error lines skipped."""
    return {m.group(2).strip(): m.group(1) for m in map(_HASH_LINE.match, text.splitlines()) if m}
