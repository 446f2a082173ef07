"""Everything after the ``.tflite`` file, and nothing before it: no TensorFlow here.

- :mod:`~mai_sr.tflite.graph`: the flatbuffer reader (ops, tensors, quantization);
- :mod:`~mai_sr.tflite.ops`: what each NPU target accepts;
- :mod:`~mai_sr.tflite.lint`: the checks against those tables;
- :mod:`~mai_sr.tflite.runtime`: LiteRT inference with exact tiling;
- :mod:`~mai_sr.tflite.artifacts`: the files around a model (sidecar, dynamic twin, metadata).
"""
