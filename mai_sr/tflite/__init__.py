"""Everything after the ``.tflite`` file, and nothing before it: no TensorFlow here.

Reading and running the file; judging it for a target (`mai_sr.lint`) sits above the
runners, since it prices findings with the simulator and asks Vela for Ethos-U.

- :mod:`~mai_sr.tflite.graph`: the flatbuffer reader (ops, tensors, quantization);
- :mod:`~mai_sr.tflite.ops`: what each NPU target accepts;
- :mod:`~mai_sr.tflite.targets`: the one table of NPU targets and Vela configurations;
- :mod:`~mai_sr.tflite.runtime`: LiteRT inference with exact tiling;
- :mod:`~mai_sr.tflite.artifacts`: the files around a model (sidecar, dynamic twin, metadata).
"""
