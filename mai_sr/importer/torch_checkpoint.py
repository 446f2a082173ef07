"""Read a PyTorch checkpoint (``.pth`` / ``.pt``) into NumPy arrays, without torch.

An unpinned ``torch`` resolves to a multi-GB CUDA build, and ``torch.load`` of an untrusted
file runs whatever its pickle says. A checkpoint saved by ``torch.save`` (torch >= 1.6) is a
zip: ``<root>/data.pkl`` (the pickled object) plus ``<root>/data/<key>`` (raw little-endian
storages). :class:`_RestrictedUnpickler` admits only the globals that rebuild tensors and
state dicts (:data:`ALLOWED_GLOBALS`) and refuses every other one, so a malicious pickle
(``os.system``, ``builtins.eval``, ...) fails before it can run. No maintained library reads
this format without torch itself, hence the small unpickler (modelled on torch's own
``weights_only`` unpickler).

:func:`read_state_dict` returns the flat ``{name: array}`` dict in the checkpoint's own
order (module registration order), unwrapping the ``params_ema`` / ``params`` /
``state_dict`` / ``model`` nesting that training frameworks add.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from mai_sr.errors import MaiSrError

# Keys under which training frameworks nest the weights, in order of preference: the EMA
# weights (BasicSR's params_ema) are the ones its authors evaluate.
NESTING_KEYS = ("params_ema", "params", "state_dict", "model", "net", "generator")

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
    """Stands in for ``torch.FloatStorage`` & co.: only its dtype is needed."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    """``torch._utils._rebuild_tensor_v2`` for NumPy: a strided view of the storage, copied."""
    size, stride = tuple(size), tuple(stride)
    if not size:
        return storage[storage_offset].copy()
    itemsize = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:], shape=size, strides=tuple(s * itemsize for s in stride))
    return np.array(view)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *args):
    """``torch._utils._rebuild_parameter``: a Parameter is its data here."""
    return data


ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): lambda storage, offset, size, stride:
        _rebuild_tensor_v2(storage, offset, size, stride),
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a torch zip checkpoint's data.pkl, admitting only tensor-rebuild globals."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, root: str, byteorder: str,
                 source: Path):
        super().__init__(io.BytesIO(data))
        self._archive, self._root, self._byteorder = archive, root, byteorder
        self._source = source
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            hint = ("; it looks like a whole pickled model: save model.state_dict() instead"
                    if module.startswith("torch.nn") or module == "__main__" else "")
            raise MaiSrError(f"{self._source}: refusing to load {module}.{name}: only tensor "
                             "and state-dict globals are admitted (the pickle could run "
                             f"code){hint}") from None

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel)
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise MaiSrError(f"{self._source}: unexpected persistent id {pid!r:.80}")
        storage_type, key = pid[1], str(pid[2])
        if key not in self._storages:
            name = f"{self._root}/data/{key}"
            try:
                raw = self._archive.read(name)
            except KeyError:
                raise MaiSrError(f"{self._source}: storage {name} missing") from None
            dtype = storage_type.dtype.newbyteorder("<" if self._byteorder == "little" else ">")
            self._storages[key] = np.frombuffer(raw, dtype=dtype).astype(storage_type.dtype)
        return self._storages[key]


def read_checkpoint(path) -> object:
    """The unpickled object of a torch zip checkpoint (tensors as NumPy arrays)."""
    path = Path(path)
    if not path.is_file():
        raise MaiSrError(f"{path}: not found")
    if not zipfile.is_zipfile(path):
        raise MaiSrError(f"{path}: not a zip checkpoint (legacy torch < 1.6 format or not a "
                         "torch file); re-save it with torch.save(state_dict) in torch >= 1.6")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pickles:
            kind = "a TorchScript archive" if any(n.endswith("constants.pkl") for n in names) \
                else "not a torch checkpoint"
            raise MaiSrError(f"{path}: {kind} (no data.pkl); save the model's state_dict "
                             "with torch.save")
        root = pickles[0].split("/")[0]
        byteorder = "little"
        if f"{root}/byteorder" in names:
            byteorder = archive.read(f"{root}/byteorder").decode().strip()
        unpickler = _RestrictedUnpickler(archive.read(pickles[0]), archive, root, byteorder,
                                         path)
        try:
            return unpickler.load()
        except MaiSrError:
            raise
        except Exception as exc:  # a damaged pickle raises many types
            raise MaiSrError(f"{path}: cannot read the checkpoint ({type(exc).__name__}: "
                             f"{exc})") from None


def read_state_dict(path) -> tuple[OrderedDict, str | None]:
    """(flat ``{name: ndarray}`` state dict in the file's order, the nesting key or None)."""
    obj = read_checkpoint(path)
    nesting = None
    if isinstance(obj, dict) and not any(isinstance(v, np.ndarray) for v in obj.values()):
        for key in NESTING_KEYS:
            if isinstance(obj.get(key), dict):
                obj, nesting = obj[key], key
                break
    if not isinstance(obj, dict):
        raise MaiSrError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    tensors = OrderedDict((str(k), v) for k, v in obj.items() if isinstance(v, np.ndarray))
    if not tensors:
        raise MaiSrError(f"{path}: no tensors found (keys: {', '.join(map(str, list(obj)[:6]))})")
    return tensors, nesting
