"""Kept for scripts written against the old layout: the runtime lives in
:mod:`mai_sr.tflite.runtime`."""

from mai_sr.tflite.runtime import TFLiteSR, tile_spans  # noqa: F401
