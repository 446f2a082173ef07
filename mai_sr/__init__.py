"""mai-sr: quantized x3 super-resolution for mobile NPUs, from Keras training to INT8 TFLite."""

__version__ = "0.1.0"
