"""Hostile model files, built byte by byte, for the tests that show mai-sr reads them as data.

Each builder writes a file that a careless reader would execute, read past a buffer with,
or inflate without bound. The PyTorch ones are written opcode by opcode (protocol 2), so
they need no torch and can say things torch itself never would (a stride past the storage).
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np


# ------------------------------------------------------------------ PyTorch zip checkpoints


def _str(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE


def _int(value: int) -> bytes:
    if -2**31 <= value < 2**31:
        return b"J" + struct.pack("<i", value)  # BININT
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1


def _tuple(values) -> bytes:
    return b"(" + b"".join(_int(v) for v in values) + b"t"  # MARK ... TUPLE


_ORDERED_DICT = b"ccollections\nOrderedDict\n)R"  # GLOBAL, EMPTY_TUPLE, REDUCE


def torch_pickle(tensors) -> bytes:
    """data.pkl of an OrderedDict {name: tensor}; `tensors` holds
    (name, storage key, numel of the storage, offset, size, stride) tuples."""
    out = bytearray(b"\x80\x02" + _ORDERED_DICT)
    for name, key, numel, offset, size, stride in tensors:
        out += _str(name) + b"ctorch._utils\n_rebuild_tensor_v2\n("
        out += (b"(" + _str("storage") + b"ctorch\nFloatStorage\n" + _str(key) + _str("cpu")
                + _int(numel) + b"tQ")  # the storage, by persistent id (BINPERSID)
        out += _int(offset) + _tuple(size) + _tuple(stride) + b"\x89" + _ORDERED_DICT + b"tR"
        out += b"s"  # SETITEM
    return bytes(out + b".")


def torch_zip(path: Path, tensors, storages: dict[str, bytes], *, deflate: bool = False,
              pickle_bytes: bytes | None = None) -> Path:
    """A torch.save-style zip: archive/data.pkl plus archive/data/<key> for each storage."""
    compression = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("archive/data.pkl", pickle_bytes or torch_pickle(tensors))
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw)
    return path


def state_dict_file(path: Path, arrays: dict) -> Path:
    """A torch.save-style file of the float32 state dict {name: array} (C order)."""
    tensors, storages = [], {}
    for i, (name, value) in enumerate(arrays.items()):
        value = np.ascontiguousarray(value, "<f4")
        strides = tuple(int(np.prod(value.shape[k + 1:])) for k in range(value.ndim))
        tensors.append((name, str(i), value.size, 0, value.shape, strides))
        storages[str(i)] = value.tobytes()
    return torch_zip(path, tensors, storages)


def conv_checkpoint(path: Path, **overrides) -> Path:
    """A valid one-conv checkpoint (weight 3x3x3x3 in storage "0", bias in "1"), with any
    field of the weight's entry replaced: offset=, size=, stride=, numel=."""
    weight = np.arange(81, dtype="<f4") / 81
    entry = {"numel": 81, "offset": 0, "size": (3, 3, 3, 3), "stride": (27, 9, 3, 1),
             **overrides}
    tensors = [("conv.weight", "0", entry["numel"], entry["offset"], entry["size"],
                entry["stride"]),
               ("conv.bias", "1", 3, 0, (3,), (1,))]
    return torch_zip(path, tensors, {"0": weight.tobytes(), "1": np.zeros(3, "<f4").tobytes()})


def code_pickle(command: str) -> bytes:
    """A pickle that runs ``os.system(command)`` when loaded by a plain unpickler."""
    return b"\x80\x02cos\nsystem\n" + _str(command) + b"\x85R."


def zip_bomb(path: Path, inflated_bytes: int) -> Path:
    """A checkpoint whose one storage inflates to `inflated_bytes` of zeros (deflated to a
    thousandth of that)."""
    n = inflated_bytes // 4
    tensors = [("conv.weight", "0", n, 0, (n,), (1,))]
    return torch_zip(path, tensors, {"0": bytes(inflated_bytes)}, deflate=True)


# ------------------------------------------------------------------ Keras HDF5


def keras_h5_external(path: Path, other: Path) -> Path:
    """A legacy Keras weights .h5 whose conv kernel is stored in another file (HDF5
    external storage): a reader that follows it copies that file's bytes into the weights."""
    import h5py

    size = 3 * 3 * 3 * 27 * 4
    other.write_bytes(np.arange(size // 4, dtype="<f4").tobytes())
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"conv2d"]
        group = f.create_group("conv2d")
        group.attrs["weight_names"] = [b"conv2d/kernel:0", b"conv2d/bias:0"]
        group.create_dataset("conv2d/kernel:0", shape=(3, 3, 3, 27), dtype="<f4",
                             external=[(str(other), 0, size)])
        group.create_dataset("conv2d/bias:0", data=np.zeros(27, "<f4"))
    return path


def keras_h5_external_link(path: Path, other: Path) -> Path:
    """A legacy Keras weights .h5 whose conv group is an HDF5 external link to another file."""
    import h5py

    with h5py.File(other, "w") as f:
        g = f.create_group("conv2d")
        g.create_dataset("kernel:0", data=np.ones((3, 3, 3, 27), "<f4"))
        g.create_dataset("bias:0", data=np.zeros(27, "<f4"))
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"conv2d"]
        group = f.create_group("conv2d")
        group.attrs["weight_names"] = [b"conv2d/kernel:0", b"conv2d/bias:0"]
        group["conv2d"] = h5py.ExternalLink(str(other), "/conv2d")
    return path


def keras_h5_huge(path: Path) -> Path:
    """A legacy Keras weights .h5 declaring a 4 GB gzip-compressed kernel (a few KB on disk)."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"conv2d"]
        group = f.create_group("conv2d")
        group.attrs["weight_names"] = [b"conv2d/kernel:0"]
        group.create_dataset("conv2d/kernel:0", shape=(3, 3, 32768, 32768), dtype="<f4",
                             compression="gzip", chunks=(3, 3, 64, 64), fillvalue=0.0)
    return path


# ------------------------------------------------------------------ TF files (need TF)


def savedmodel_that_writes(folder: Path, marker: Path) -> Path:
    """A SavedModel with a conv's variables and a resource whose initializer writes `marker`:
    ``tf.saved_model.load`` runs that initializer."""
    from mai_sr._tf import tf

    class Writer(tf.saved_model.experimental.TrackableResource):
        def _create_resource(self):
            return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="")

        def _initialize(self):
            tf.io.write_file(str(marker), "written by the model file")

    module = tf.Module()
    module.writer = Writer()
    module.kernel = tf.Variable(tf.random.normal([3, 3, 3, 27], seed=1))
    module.bias = tf.Variable(tf.zeros([27]))
    tf.saved_model.save(module, str(folder))
    if marker.exists():  # saving ran the initializer once: start clean
        marker.unlink()
    return folder


def keras_h5_with_lambda(path: Path, marker: Path) -> Path:
    """A whole Keras model .h5 whose Lambda layer's marshalled code writes `marker` when
    Keras deserializes and calls it."""
    from mai_sr._tf import keras

    def write_marker(x, _path=str(marker)):
        open(_path, "w").write("written by the model file")
        return x

    inputs = keras.Input((None, None, 3))
    y = keras.layers.Conv2D(27, 3, padding="same")(inputs)
    y = keras.layers.Lambda(write_marker)(y)
    model = keras.Model(inputs, y)
    model.save(str(path), save_format="h5")
    if marker.exists():  # building the model called the Lambda once
        marker.unlink()
    return path


def tflite_that_writes(path: Path, marker: Path) -> Path:
    """A TFLite file whose first op is ``FlexWriteFile(marker)`` (a TensorFlow op run by the
    Flex delegate), followed by an x3 depth-to-space of 9 input copies."""
    from mai_sr._tf import tf

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32)])
    def model(x):
        tf.io.write_file(str(marker), "written by the model file")
        return tf.nn.depth_to_space(tf.concat([x] * 9, -1), 3)

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [model.get_concrete_function()], model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                           tf.lite.OpsSet.SELECT_TF_OPS]
    path.write_bytes(converter.convert())
    return path


def unknown_architecture(path: Path, convs: int, width: int = 16) -> Path:
    """A state dict of `convs` convs of an architecture no registry entry has (EDSR-style:
    head 3 -> C, a body of C -> C, a tail C -> 3), zero weights: the shape a search over conv
    orders once took exponential time on."""
    shapes = [(width, 3)] + [(width, width)] * (convs - 2) + [(3, width)]
    tensors, storages = [], {}
    for i, (o, c) in enumerate(shapes):
        numel = o * c * 9
        tensors.append((f"body.{i}.weight", str(2 * i), numel, 0, (o, c, 3, 3),
                        (c * 9, 9, 3, 1)))
        tensors.append((f"body.{i}.bias", str(2 * i + 1), o, 0, (o,), (1,)))
        storages[str(2 * i)] = np.zeros(numel, "<f4").tobytes()
        storages[str(2 * i + 1)] = np.zeros(o, "<f4").tobytes()
    return torch_zip(path, tensors, storages)


# ------------------------------------------------------------------ TFLite (TF-free)


def tflite_short_kernel(path: Path, source: Path, kernel_elements: int = 27 * 3 * 3 * 28) -> Path:
    """`source` (a fixed-shape ABPN .tflite) with its last conv kernel's int8 vector declared
    four bytes shorter than the tensor's shape: a reader that trusts the shape reads past it."""
    data = bytearray(source.read_bytes())
    length = struct.pack("<I", kernel_elements)
    where = data.rindex(length)
    data[where:where + 4] = struct.pack("<I", kernel_elements - 4)
    path.write_bytes(bytes(data))
    return path
