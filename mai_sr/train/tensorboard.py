"""TensorBoard logs of a run (``RUN/tensorboard/``): loss, LR and validation PSNR per logged
row, and a few validation images (bicubic, SR, HR) at the end of each stage.

Written with TensorFlow's own low-level ``tf.summary.write`` and the scalar/image plugin
metadata, not ``tf.summary.scalar``/``image``: those live in the ``tensorboard`` package,
which training does not otherwise need. Viewing the logs needs it (``pip install
tensorboard``; ``tensorboard --logdir runs``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from mai_sr.errors import MaiSrError, first_line

TENSORBOARD_DIR = "tensorboard"
IMAGES_PER_STAGE = 3  # validation images shown per stage (the first ones of the val set)
IMAGE_LR_CROP = 96  # LR side of the centre crop shown: whole photos made 1 MB PNGs each


def _center_crop(lr: np.ndarray, hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """The centre (at most IMAGE_LR_CROP square) of an LR image and the matching HR."""
    h, w = min(IMAGE_LR_CROP, lr.shape[0]), min(IMAGE_LR_CROP, lr.shape[1])
    y, x = (lr.shape[0] - h) // 2, (lr.shape[1] - w) // 2
    return (lr[y:y + h, x:x + w],
            hr[y * scale:(y + h) * scale, x * scale:(x + w) * scale])


class TensorBoardLog:
    """One run's event file writer; every method is a no-op when disabled. TF's file errors
    (a full disk, a read-only folder) become one-line MaiSrErrors."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.writer, self.folder = None, Path(run_dir) / TENSORBOARD_DIR
        if enabled:
            from mai_sr._tf import tf

            with self._errors():
                self.writer = tf.summary.create_file_writer(str(self.folder))

    @contextlib.contextmanager
    def _errors(self):
        from mai_sr._tf import tf

        try:
            yield
        except (tf.errors.OpError, OSError) as exc:
            raise MaiSrError(f"{self.folder}: cannot write TensorBoard logs "
                             f"({first_line(exc)}); "
                             "--no-tensorboard skips them") from None

    @staticmethod
    def _metadata(plugin: str):
        from tensorflow.core.framework import summary_pb2

        metadata = summary_pb2.SummaryMetadata()
        metadata.plugin_data.plugin_name = plugin
        return metadata

    def scalars(self, stage: str, step: int, values: dict) -> None:
        """`values` (name -> number or None) as scalars ``<stage>/<name>`` at `step`."""
        if self.writer is None:
            return
        from mai_sr._tf import tf

        metadata = self._metadata("scalars")
        with self._errors(), self.writer.as_default():
            for name, value in values.items():
                if value is not None and value != "":
                    tf.summary.write(f"{stage}/{name}", tf.constant(float(value)), step=step,
                                     metadata=metadata)

    def images(self, stage: str, step: int, model, val_pairs, scale: int) -> None:
        """Bicubic | SR | HR side by side for the first validation images."""
        if self.writer is None:
            return
        from mai_sr._tf import tf
        from mai_sr.data import bicubic_upscale

        metadata = self._metadata("images")
        with self._errors(), self.writer.as_default():
            for pair in val_pairs[:IMAGES_PER_STAGE]:
                lr, hr = _center_crop(pair.lr, pair.hr, scale)
                out = model(lr[None].astype(np.float32), training=False).numpy()[0]
                sr = np.clip(np.rint(out), 0, 255).astype(np.uint8)
                strip = np.concatenate([bicubic_upscale(lr, scale), sr, hr], axis=1)
                # The image plugin's tensor: [width, height, PNG bytes...] as strings.
                tensor = tf.stack([tf.as_string(strip.shape[1]), tf.as_string(strip.shape[0]),
                                   tf.io.encode_png(strip)])
                tf.summary.write(f"{stage}/val/{pair.name}", tensor, step=step,
                                 metadata=metadata)

    def flush(self) -> None:
        if self.writer is not None:
            with self._errors():
                self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            with self._errors():
                self.writer.close()
            self.writer = None
