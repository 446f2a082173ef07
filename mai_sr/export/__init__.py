"""Keras -> ``.tflite``: the only place where TensorFlow writes a model file."""
