"""Keras -> ``.tflite``: the only place where TensorFlow writes a model file."""

# `export --precision` choices (this package's __init__ imports nothing, so the CLI reads them
# without TensorFlow).
PRECISIONS = ("int8", "fp16", "fp32")
