"""Write the small TFLite models the TF-free tests read (tests/data/*.tflite).

Run by hand, with TensorFlow installed, when a builder in tests/tflite_factory.py or its
table PREBUILT changes:

    python tests/data/make_test_models.py

tests/test_prebuilt_models.py (marked tf) checks that the files here are what it writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(DATA_DIR.parent))            # tests/: tflite_factory
sys.path.insert(1, str(DATA_DIR.parent.parent))     # the checkout: mai_sr._tf

from tflite_factory import PREBUILT, build_prebuilt  # noqa: E402


def main() -> int:
    for old in DATA_DIR.glob("*.tflite"):
        if old.stem not in PREBUILT:
            old.unlink()  # a model dropped from the table
    total = 0
    for name in PREBUILT:
        path = build_prebuilt(name, DATA_DIR / f"{name}.tflite")
        total += path.stat().st_size
        print(f"{path.name:28s} {path.stat().st_size:8d} bytes")
    print(f"{len(PREBUILT)} files, {total} bytes in {DATA_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
