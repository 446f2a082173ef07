"""Shipped pretrained INT8 models (filled by the pretrained issue)."""
