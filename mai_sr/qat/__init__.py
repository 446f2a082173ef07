"""Quantization-aware training (filled by the training issue)."""
