"""Export a model to TFLite: ``mai-sr export model.tflite --run RUN``.

INT8 (the default) is full-integer TFLite (``TFLITE_BUILTINS_INT8``) with uint8 input and
output, both with scale 1 and zero point 0: raw pixels in, raw pixels out. It is always
converted from the fake-quant Keras model of :func:`mai_sr.models.qat.quantize_model`, whose
fake-quant ops become the tensors' quantization parameters one for one:

- a run with a QAT stage exports its QAT model as trained (quantization-aware training);
- ``--pretrained X`` exports the shipped model: its deploy weights after QAT and its QAT
  activation ranges (``X.qat.json``) rebuild the QAT model, so the file equals the shipped one;
- anything else (a run without ``--qat``, ``--model X --weights F``) is
  quantized after training (PTQ): the same fake-quant graph, with every activation range set
  to the min/max over ``--calib-n`` real LR crops of ``--calib`` (default: the builtin
  photos), after the same crops rescaled SCSRN's skip-concat features to fill the image's
  range (exact in float); weights get per-channel symmetric ranges from their values. Using the fake-quant
  graph rather than TFLite's own calibrator keeps the input and output at exactly
  [0, 255] and gives each tensor one range, so both kinds of export have the same graph.

``fp16`` (float16 weights, float32 compute and IO) and ``fp32`` export the FP32 deploy model.

The fixed-shape file is written to OUTPUT; its default shape is the scale's timing input
(:func:`mai_sr.challenge.timing_input`: 1x360x640x3 -> 1x1080x1920x3 at x3, the challenge's
setup; 256x256 at x4, the efficient-SR reports'; 540x960 at x2, a 1080p output). The scale is
the run's (``config.json``), 3 for ``--pretrained`` (the shipped models are x3), or
``--scale`` with ``--model/--weights``; ``--dynamic`` adds ``<stem>_none.tflite`` beside
it (any H x W, for fidelity runs). Every file gets a provenance record (model, scale,
precision, shapes, source, run config hash, toolkit versions), stored twice: in the TFLite
metadata under the name ``mai_sr_provenance`` and in a sidecar ``<file>.json`` that also
holds the file's SHA-256. All conversions run before anything is written, and files are
written atomically, so a failed export leaves no partial ``.tflite`` and never damages an
existing one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mai_sr import __version__, fileio
from mai_sr._quiet import stderr_silenced
from mai_sr.tflite.artifacts import METADATA_NAME, dynamic_path, sidecar_path
from mai_sr._tf import keras, tf
from mai_sr.challenge import CHALLENGE_SCALE, PRETRAINED_SCALE, timing_input
from mai_sr.errors import MaiSrError, first_line
from mai_sr.export import PRECISIONS
from mai_sr.weights import is_weights_file, weights_file_model

CALIB_CROP = 96  # LR side of a calibration crop (whole image when smaller)
# Smallest LR side an image must have to calibrate on: ranges from tinier crops are mostly
# the convs' zero-padded borders and miss real image content (a folder of tiny images gave
# one 1x1 crop and a file scoring 27.18 dB on Set5 against 30.97 dB when calibrated properly).
MIN_CALIB_LR_SIDE = 16
# Distinct LR pixels the calibration crops must cover: one full crop's worth. Ranges from
# fewer pixels fit one small patch (one 48x48 image, 256 LR pixels at x3, gave a file at
# 27.61 dB on Set5, below bicubic's 28.62).
MIN_CALIB_PIXELS = CALIB_CROP * CALIB_CROP
CALIB_CHECK_CROPS = 16  # crops of each INT8-vs-FP32 check (calibration, builtin photos)
# How much worse the INT8 model may follow its FP32 model on the builtin photos than on its
# calibration crops before a line warns. Measured on ABPN: 51-53 dB on both for T91-like
# sets, one photo, or the builtin photos; 70 dB against 31 dB for one flat 400x400 image.
CALIB_HELD_OUT_DROP_DB = 3.0


# ---------------------------------------------------------------- conversion


def is_quantized(model) -> bool:
    """True for a tfmot QAT (fake-quant) model."""
    return any(type(layer).__name__.startswith("Quantize") for layer in model.layers)


def _converter_samples(shape):
    """Inputs for the converter's INT8 mode, which insists on a representative dataset.

    Every tensor of our fake-quant graphs already has its range, so these values do not
    change the result (a test converts with different samples and compares every scale).
    """
    h, w = shape if shape is not None else (16, 16)
    ramp = np.linspace(0.0, 255.0, h * w * 3, dtype=np.float32).reshape(1, h, w, 3)
    yield [ramp]


def convert_keras(model, shape, precision: str, representative=None) -> bytes:
    """TFLite flatbuffer of `model` for LR input `shape` (H, W), or any H x W if None.

    int8: `model` is a QAT model (converted as is), or a float deploy model plus
    `representative`, an iterable of float LR batches in [0, 255] used to calibrate it
    (see the module docstring). fp16/fp32: `model` is a float model.
    """
    if precision not in PRECISIONS:
        raise MaiSrError(f"--precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "int8" and not is_quantized(model):
        if representative is None:
            raise MaiSrError("int8 export of a float model needs calibration data (--calib)")
        from mai_sr.models.qat.quantize import quantize_model

        model = quantize_model(model, calibration=representative)
    if precision != "int8" and is_quantized(model):
        raise MaiSrError(f"{precision} export needs the float model, got a QAT model")
    if precision == "int8":
        with _no_uniform_biases(model):
            return _run_converter(model, shape, precision)
    return _run_converter(model, shape, precision)


@contextlib.contextmanager
def _no_uniform_biases(model):
    """Every bias whose channels all hold one non-zero value gets its first channel moved
    by one float32 step for the conversion, then restored.

    Why: the converter quantizes such a constant (a "splat") with its first channel's scale
    and writes that one integer to every channel, while the file gives each channel its own
    scale (input scale x that channel's weight scale). Measured on ETDS-M x3, whose clip conv
    has bias 255 on every channel and weights -0.94 to -1.00: the file's biases came out
    253.1 to 269.1 (255 x each channel's weight scale / the first's), 1.9 dB lost on Set5;
    with the step, every bias is within 0.005 of 255. One float32 step of 255 (3e-5) is
    below a thousandth of the int32 bias step, so the integers are those of the true bias.
    """
    moved = []
    for variable in model.weights:
        if not variable.name.split("/")[-1].startswith("bias") or variable.shape.rank != 1:
            continue
        values = variable.numpy()
        if values.size > 1 and values[0] != 0 and np.all(values == values[0]):
            nudged = values.copy()
            nudged[0] = np.nextafter(values[0], np.float32(np.inf))
            variable.assign(nudged)
            moved.append((variable, values))
    try:
        yield
    finally:
        for variable, values in moved:
            variable.assign(values)


def _run_converter(model, shape, precision: str) -> bytes:
    """The TFLite converter on `model` (int8: a fake-quant model) at LR `shape`."""
    h, w = shape if shape is not None else (None, None)
    inp = keras.Input((h, w, 3), batch_size=1, name="lr")
    fixed = keras.Model(inp, model(inp, training=False))
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    if precision == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.representative_dataset = lambda: _converter_samples(shape)
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    elif precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    # stderr: the converter's C++ prints a stray ``fully_quantize: 0, inference_type: 6, ...``
    # line for every INT8 file, below the log level switches; failures still arrive as the
    # exception's text.
    with warnings.catch_warnings(), stderr_silenced():
        # uint8 input "statistics" are the fixed [0, 255] fake-quant range; nothing missing.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        try:
            return converter.convert()
        except Exception as exc:  # the converter raises many types, all with long text
            raise MaiSrError(f"TFLite conversion failed ({precision}): {first_line(exc)}") \
                from exc


def weights_sha256(model) -> str:
    """Hex SHA-256 of a Keras model's weights (dtype, shape and bytes of every array, in
    order): one network gives one hash, whatever input shape it is converted at."""
    h = hashlib.sha256()
    for w in model.get_weights():
        w = np.ascontiguousarray(w)
        h.update(f"{w.dtype.str}{w.shape}".encode())
        h.update(w.tobytes())
    return h.hexdigest()


def add_metadata(tflite_bytes: bytes, name: str, payload: bytes) -> bytes:
    """`tflite_bytes` with a Metadata entry `name` whose buffer holds `payload`."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_bytes))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


# ---------------------------------------------------------------- calibration data


def calibration_batches(source, n: int, crop: int = CALIB_CROP, seed: int = 0,
                        scale: int = CHALLENGE_SCALE) -> list:
    """`n` LR crops (float32, (1, h, w, 3), [0, 255]) from the images of `source`,
    downscaled by `scale`.

    Crops are `crop` x `crop` (the whole LR image when it is smaller), each from an image
    and position drawn with a fixed seed, so an export is reproducible.
    """
    return _calibration_crops(source, n, crop, seed, scale)[0]


def _calibration_crops(source, n: int, crop: int = CALIB_CROP, seed: int = 0,
                       scale: int = CHALLENGE_SCALE) -> tuple[list, int, int]:
    """(crops as :func:`calibration_batches` gives them, images they come from, distinct
    LR pixels they cover)."""
    from mai_sr.data import load_pairs

    name = source or "builtin"
    with warnings.catch_warnings(record=True) as skipped:  # said in the error, if any
        warnings.simplefilter("always")
        try:
            pairs = load_pairs(name, scale=scale)
        except MaiSrError as exc:
            raise MaiSrError(f"--calib {name}: {exc}") from None
    usable = [p for p in pairs if min(p.lr.shape[:2]) >= MIN_CALIB_LR_SIDE]
    if not usable:
        largest = max(pairs, key=lambda p: p.lr.shape[0] * p.lr.shape[1]).lr.shape
        also = f" ({skipped[0].message})" if skipped else ""
        raise MaiSrError(f"--calib {name}: too little calibration data: no image has an LR "
                         f"side of at least {MIN_CALIB_LR_SIDE} px at x{scale} (the largest "
                         f"of {len(pairs)} is {largest[1]}x{largest[0]}){also}; give bigger "
                         "images (or leave out --calib for the builtin photos)")
    rng = np.random.default_rng(seed)
    crops, seen = [], {}
    for _ in range(n):
        index = int(rng.integers(len(usable)))
        lr = usable[index].lr
        ch, cw = min(crop, lr.shape[0]), min(crop, lr.shape[1])
        y, x = rng.integers(lr.shape[0] - ch + 1), rng.integers(lr.shape[1] - cw + 1)
        crops.append(lr[None, y:y + ch, x:x + cw].astype(np.float32))
        seen.setdefault(index, np.zeros(lr.shape[:2], bool))[y:y + ch, x:x + cw] = True
    return crops, len(seen), int(sum(mask.sum() for mask in seen.values()))


def int8_vs_fp32_psnr(fp32, int8, batches) -> float:
    """PSNR (dB, over all pixels of `batches`) of the INT8 (fake-quant) model's output
    against its FP32 model's, both rounded to pixels: how much quantization changes the
    image, where an INT8 model should be near its FP32 one (infinite when identical)."""
    from mai_sr.scoring import to_uint8

    squared, count = 0.0, 0
    for lr in batches:
        a = to_uint8(np.asarray(fp32(lr, training=False))).astype(np.float64)
        b = to_uint8(np.asarray(int8(lr, training=False))).astype(np.float64)
        squared, count = squared + float(np.sum((a - b) ** 2)), count + a.size
    mse = squared / count
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def calibrate(model, calib, n: int, scale: int) -> tuple:
    """(the fake-quant model of float `model` calibrated on `n` crops of `calib`, the
    provenance record of its calibration: the data, the crops and, under "check", the
    images and LR pixels covered and the INT8-vs-FP32 PSNRs).

    Refused when the crops cover fewer distinct LR pixels than :data:`MIN_CALIB_PIXELS`.
    The calibrated model is checked against its FP32 model on the calibration crops and on
    held-out crops of the builtin photos (the INT8-vs-FP32 PSNR of each, in the record and
    on stderr); a line warns when the held-out figure falls :data:`CALIB_HELD_OUT_DROP_DB`
    below the calibration one (ranges fitted to the calibration images clip others).
    """
    from mai_sr.models.qat.quantize import quantize_model

    name = calib or "builtin"
    crops, images, pixels = _calibration_crops(calib, n, scale=scale)
    if pixels < MIN_CALIB_PIXELS:
        raise MaiSrError(f"--calib {name}: too little calibration data: its {n} crops cover "
                         f"{pixels:,} distinct LR pixels of {images} image(s) at x{scale}, "
                         f"fewer than one {CALIB_CROP}x{CALIB_CROP} crop ({MIN_CALIB_PIXELS:,}); "
                         "give more or bigger images (or leave out --calib for the builtin "
                         "photos)")
    quantized = quantize_model(model, calibration=crops)
    held_out = calibration_batches("builtin", CALIB_CHECK_CROPS, scale=scale, seed=1)
    check = {"calibration": round(int8_vs_fp32_psnr(model, quantized,
                                                    crops[:CALIB_CHECK_CROPS]), 2),
             "builtin": round(int8_vs_fp32_psnr(model, quantized, held_out), 2)}
    record = {"data": _source_names(calib), "crops": n, "crop": CALIB_CROP,
              "check": {"images": images, "lr_pixels": pixels, "int8_vs_fp32_psnr": check}}
    tqdm.write(f"calibration: {n} crops of {images} image(s) ({pixels:,} LR pixels); INT8 "
                f"vs FP32 PSNR {check['calibration']:.2f} dB on them, {check['builtin']:.2f} "
                "dB on the builtin photos", file=sys.stderr)
    if check["builtin"] < check["calibration"] - CALIB_HELD_OUT_DROP_DB:
        tqdm.write(f"warning: --calib {name}: the INT8 model follows its FP32 model "
                    f"{check['calibration'] - check['builtin']:.1f} dB worse on other images "
                    "than on its calibration images: calibrate on more varied images",
                    file=sys.stderr)
    return quantized, record


# ---------------------------------------------------------------- sources


def _load_weights_into(name: str, path: Path, scale: int):
    """A deploy model of `name` at `scale` with `path`'s weights: float deploy weights, or QAT
    ones."""
    from mai_sr.models import create_model
    from mai_sr.models.qat.quantize import quantize_model

    if not path.is_file():
        raise MaiSrError(f"--weights: {path} not found")
    deploy = create_model(name, scale=scale, deploy=True)
    try:
        deploy.load_weights(str(path))
        return deploy, "float"
    except Exception:  # not float deploy weights: try the QAT layout before giving up
        pass
    quantized = quantize_model(deploy)
    try:
        quantized.load_weights(str(path))
    except Exception as exc:
        raise MaiSrError(f"{path}: not deploy-graph or QAT weights of {name} x{scale} "
                         f"({first_line(exc)})") from None
    return quantized, "qat"


def _load_source(run, model, weights, pretrained, precision: str, scale=None) -> tuple:
    """(keras model, model name, scale, provenance source dict) for the export arguments.

    The scale is the run's, the shipped models' (x3) or, with --model/--weights, `scale`
    (default 3); a `scale` that contradicts a run or the shipped models is an error.
    """
    given = [flag for flag, value in (("--run", run), ("--pretrained", pretrained),
                                      ("--model/--weights", model or weights)) if value]
    if len(given) != 1:
        raise MaiSrError("give one source: --run RUN, --model NAME --weights FILE, or "
                         "--pretrained NAME" + (f" (got {', '.join(given)})" if given else ""))
    if run is not None:
        from mai_sr.runs import QAT_WEIGHTS, load_run_model, read_run_config, run_scale
        from mai_sr.training_data import training_record

        run = Path(run)
        config = read_run_config(run)
        if scale is not None and scale != run_scale(config):
            raise MaiSrError(f"--scale {scale}: --run {run} trained x{run_scale(config)}")
        stage = "qat" if precision == "int8" and (run / QAT_WEIGHTS).is_file() else "fp32"
        # Names only: the file is shipped and shared, a local absolute path means nothing
        # elsewhere (and tells others about this machine).
        source = {"run": run.resolve().name, "stage": stage,
                  "run_config_sha256": fileio.sha256_json(config),
                  # what it trained on, so `eval` on those images says so
                  "training": training_record(config)}
        return load_run_model(run, stage), config["model"], run_scale(config), source
    if pretrained is not None:
        from mai_sr.pretrained import architecture, pretrained_path, weight_name

        if scale is not None and scale != PRETRAINED_SCALE:
            raise MaiSrError(f"--scale {scale}: the shipped models are x{PRETRAINED_SCALE}; "
                             "train one (mai-sr train --scale) and export it with --run")
        path = pretrained_path(pretrained, "weights")
        arch = architecture(pretrained)  # `pretrained` may be a weight (abpn.etds_div2k)
        loaded, kind = _load_weights_into(arch, path, PRETRAINED_SCALE)
        source = {"pretrained": weight_name(pretrained), "weights": path.name,
                  "weights_kind": kind,
                  "weights_sha256": fileio.sha256_file(path)}
        if precision == "int8" and kind == "float":  # + the shipped QAT ranges: the QAT model
            from mai_sr.models.qat.quantize import quantize_model

            ranges_file = pretrained_path(pretrained, "ranges")
            loaded = quantize_model(loaded, ranges=json.loads(ranges_file.read_text()))
            source.update(weights_kind="qat", ranges=ranges_file.name,
                          ranges_sha256=fileio.sha256_file(ranges_file))
        return loaded, arch, PRETRAINED_SCALE, source
    if not (model and weights):
        raise MaiSrError("--model and --weights go together (deploy-graph weights of that model)")
    if is_weights_file(weights) and Path(weights).is_file():
        # `mai-sr import` records the source's scale beside the file: adopt or check it.
        _, model, scale = weights_file_model(weights, model, scale, option="--weights")
    scale = CHALLENGE_SCALE if scale is None else scale
    path = Path(weights)
    loaded, kind = _load_weights_into(model, path, scale)
    return loaded, model, scale, {"weights": path.name, "weights_kind": kind,
                           "weights_sha256": fileio.sha256_file(path)}


# ---------------------------------------------------------------- export



def export(output, *, run=None, model=None, weights=None, pretrained=None, shape=None,
           scale=None, dynamic=False, precision="int8", calib=None, calib_n=100,
           target=None, force=True) -> list[Path]:
    """Write the fixed-shape TFLite file to `output` (and ``*_none.tflite`` with `dynamic`).

    Source: `run` (a `mai-sr train` run directory; its QAT model when it has one),
    `model` + `weights` (deploy-graph weights, float or QAT), or `pretrained` (a model name
    shipped in ``mai_sr/pretrained``, x3). `scale` is needed only with `model` (default: the
    scale ``mai-sr import`` recorded beside `weights`, else 3);
    with `run` or `pretrained` it must agree with the source. `shape` is the LR (H, W) of the
    fixed file (default: the scale's timing input, :func:`mai_sr.challenge.timing_input`).
    `target` (``ethos-u55``/``ethos-u65``/``ethos-u85``) rewrites the INT8 file with exact
    equivalents so every op runs on that NPU (:mod:`mai_sr.export.targets`).
    `force=False` (the CLI without ``--force``) refuses to replace existing files.
    `calib` is refused where it would be unused (a QAT source, a float precision).
    All files (``.tflite`` files and their sidecars) are written as one set
    (:func:`mai_sr.fileio.write_files`), and every file's provenance records
    ``weights_sha256``, the hash of the exported network's weights, so readers can tell the
    files of two exports apart (:func:`mai_sr.tflite.artifacts.check_twins`).
    Returns the paths of the written .tflite files (sidecars ``<file>.json`` beside them).
    """
    output = Path(output)
    _check_arguments(output, precision, shape, calib_n, target, dynamic)
    outputs = [output] + ([dynamic_path(output)] if dynamic else [])
    _clear_the_way(outputs, force)
    keras_model, name, scale, source = _load_source(run, model, weights, pretrained, precision,
                                                    scale)
    if calib is not None and (precision != "int8" or is_quantized(keras_model)):
        why = (f"{precision} needs no calibration" if precision != "int8"
               else "the source is exported with its quantization-aware-trained ranges")
        raise MaiSrError(f"--calib {calib}: unused ({why}); drop --calib")
    record = {"model": name, "scale": scale, "precision": precision, "source": source,
              "toolkit": _versions()}
    keras_model = _quantize(keras_model, record, calib, calib_n)
    record["weights_sha256"] = weights_sha256(keras_model)
    fixed = tuple(int(v) for v in shape) if shape is not None else timing_input(scale)
    shapes = [(output, fixed)] + ([(dynamic_path(output), None)] if dynamic else [])
    files = _convert_files(keras_model, record, shapes, target)
    contents = {}
    for path, data, info in files:  # everything converted: now write, as one set
        sidecar = {**info, "file": path.name, "sha256": hashlib.sha256(data).hexdigest()}
        contents[path] = data
        contents[sidecar_path(path)] = fileio.json_bytes(sidecar)
    fileio.write_files(contents)
    return [path for path, _, _ in files]


def describe_export(path: Path) -> list[str]:
    """What `mai-sr export` says of one written file, from its sidecar: the precision and
    shapes, where its quantization comes from (QAT and from which source, or PTQ and its
    calibration set) and the sidecar's path."""
    from mai_sr.tflite.artifacts import read_sidecar

    record = read_sidecar(path)
    scale = record.get("scale", CHALLENGE_SCALE)

    def shape(dims, factor=1) -> str:
        return "x".join(str(d) if d is not None else ("H" if i == 1 else "W") if factor == 1
                        else f"{factor}{'H' if i == 1 else 'W'}" for i, d in enumerate(dims))

    shapes = f"{shape(record['input_shape'])} -> {shape(record['output_shape'], scale)}"
    lines = [f"{path}: {record['precision']}, {shapes} (x{scale} {record['model']})",
             f"  quantization: {_quantization_source(record)}"]
    psnr = record.get("calibration_check", {}).get("int8_vs_fp32_psnr")
    if psnr:
        lines.append(f"  INT8 vs FP32: {psnr['calibration']:.2f} dB on the calibration crops, "
                     f"{psnr['builtin']:.2f} dB on the builtin photos")
    if record.get("target"):
        lines.append(f"  rewritten for {record['target']['target']}: every op on its NPU "
                     "under Vela, outputs bit-identical")
    lines.append(f"  sidecar: {sidecar_path(path)}")
    return lines


def _quantization_source(record: dict) -> str:
    """Where a file's quantization comes from, in words: QAT and its source, PTQ and its
    calibration set, or none (a float file)."""
    source = record.get("source", {})
    origin = (f"run {source['run']} ({source.get('stage')} weights)" if "run" in source
              else f"shipped {source['pretrained']}" if "pretrained" in source
              else f"weights {source.get('weights')}")
    if record["precision"] != "int8":
        return f"none ({record['precision']} from the FP32 model of {origin})"
    if record.get("quantization") == "qat":
        return f"QAT, the quantization-aware-trained ranges of {origin}"
    calib = record.get("calibration", {})
    return f"PTQ of {origin}, calibrated on {calib.get('crops')} crops of {calib.get('data')}"


def _check_arguments(output: Path, precision: str, shape, calib_n: int, target,
                     dynamic: bool) -> None:
    """MaiSrError for export arguments that cannot go together, before any work."""
    if output.suffix != ".tflite":
        raise MaiSrError(f"{output}: the output file name must end in .tflite")
    if precision not in PRECISIONS:
        raise MaiSrError(f"--precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if shape is not None:
        h, w = (int(v) for v in shape)
        if h <= 0 or w <= 0:
            raise MaiSrError(f"--shape: sizes must be > 0, got {h}x{w}")
    if calib_n <= 0:
        raise MaiSrError(f"--calib-n: must be > 0, got {calib_n}")
    if target is None:
        return
    from mai_sr.tflite.targets import check_target, export_targets

    check_target(target, export_targets())
    if precision != "int8":
        raise MaiSrError(f"--target {target} needs --precision int8 (Ethos-U NPUs run "
                         "integer ops only)")
    if dynamic:
        raise MaiSrError(f"--target {target} rewrites a fixed-shape file (NPU compilers "
                         "take fixed shapes); drop --dynamic")


def _clear_the_way(outputs: list[Path], force: bool) -> None:
    """Refuse to replace existing outputs without `force`; remove what killed exports left."""
    if not force:
        existing = [str(p) for o in outputs for p in (o, sidecar_path(o)) if p.exists()]
        if existing:
            raise MaiSrError(f"{existing[0]}: already exists; add --force to replace "
                             f"{'it' if len(existing) == 1 else f'the {len(existing)} files'}")
    for folder in {o.parent for o in outputs}:
        fileio.remove_stale_temps(folder)  # what killed exports left; never renamed into place


def _quantize(keras_model, record: dict, calib, calib_n: int):
    """The model to convert: INT8 needs the fake-quant graph (a QAT source as it is, a float
    one calibrated on `calib`); `record` gets the IO and quantization entries."""
    if record["precision"] != "int8":
        record["io"] = {"dtype": "float32"}
        return keras_model
    record["io"] = {"dtype": "uint8", "scale": 1.0, "zero_point": 0}
    if is_quantized(keras_model):
        record["quantization"] = "qat"
        return keras_model
    quantized, calibration = calibrate(keras_model, calib, calib_n, record["scale"])
    # What was calibrated on, as before; the coverage and the INT8-vs-FP32 check beside it.
    record["calibration_check"] = calibration.pop("check")
    record["calibration"] = calibration
    record["quantization"] = "ptq"
    return quantized


def _convert_files(keras_model, record: dict, shapes: list, target) -> list[tuple]:
    """(path, TFLite bytes, provenance) of every file: one conversion per input shape (None:
    dynamic), rewritten for `target`, the provenance embedded as metadata."""
    scale, precision = record["scale"], record["precision"]
    files = []
    for path, fixed in tqdm(shapes, desc="converting", unit="file", leave=False):
        info = {**record, "input_shape": [1, *(fixed or (None, None)), 3],
                "output_shape": [1, *((fixed[0] * scale, fixed[1] * scale) if fixed
                                      else (None, None)), 3]}
        data = convert_keras(keras_model, fixed, precision)
        if target is not None:
            from mai_sr.export.targets import rewrite_for_target

            data, rewrite = rewrite_for_target(data, target)
            info["target"] = rewrite.to_dict()
        data = add_metadata(data, METADATA_NAME, json.dumps(info, sort_keys=True).encode())
        files.append((path, data, info))
    return files


def _source_names(calib) -> str:
    """The calibration data as recorded in provenance: 'builtin' or folder names, no paths."""
    from mai_sr.data import split_sources

    return ",".join(item if item == "builtin" else Path(item).name
                    for item in split_sources(calib or "builtin", "--calib"))


def _versions() -> dict:
    import tensorflow_model_optimization as tfmot

    return {"mai_sr": __version__, "tensorflow": tf.__version__, "tf_keras": keras.__version__,
            "tfmot": tfmot.__version__}
