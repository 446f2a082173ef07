"""Export to TFLite and lint (filled by the export issue)."""
