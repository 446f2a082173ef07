"""`mai-sr report`: leaderboard (Table 1 of the Mobile AI 2022 challenge report), plots, HTML
page and model cards.

- :func:`make_report` (``mai_sr.report.build``): the command's library entry point;
- :func:`build_model_card`, :func:`validate_model_card`, :data:`MODEL_CARD_SCHEMA`,
  :func:`lint_summary` (``mai_sr.report.cards``): the model card schema shared with the
  pretrained models.

Importing this package does not import TensorFlow (only exporting a run that has no
``export/*.tflite`` yet, or scoring its Keras FP32 network, does).
"""

from mai_sr.report.build import make_report
from mai_sr.report.cards import (MODEL_CARD_SCHEMA, build_model_card, lint_summary,
                                 validate_model_card)

__all__ = ["make_report", "build_model_card", "validate_model_card", "lint_summary",
           "MODEL_CARD_SCHEMA"]
