"""A deploy-weights file as the start of QAT (``mai-sr train --qat --from W.weights.h5``):
kept for scripts written against the old layout. The TF-free helpers live in
:mod:`mai_sr.weights`, the Keras ones in :mod:`mai_sr.runs`.

``--from`` normally names a finished FP32 run; given a ``.weights.h5`` file (what ``mai-sr
import`` writes) the QAT stage starts from those deploy weights instead, with no FP32 stage:
fine-tuning DIV2K-trained weights on a few hundred small images would lose what the import
brings. The architecture comes from ``--model`` or from the record ``mai-sr import`` writes
beside the file (``<file>.json``). Standard library only: the checks run before TF loads.
"""

from __future__ import annotations

# The file type, its record and the record's hash check are mai_sr.weights' (TF-free,
# shared with export and train).
from mai_sr.weights import (SUFFIX, check_record_hash, is_weights_file,  # noqa: E402,F401
                            weights_file_model)
