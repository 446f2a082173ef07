"""Model registry (filled by the models issue)."""
