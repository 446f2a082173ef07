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
from mai_sr.importer.source import MAX_SOURCE_BYTES

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


class _Storage:
    """One storage of the archive: a 1-D array and the archive member it came from."""

    def __init__(self, array: np.ndarray, member: str):
        self.array, self.member = array, member


class _TensorRef:
    """A tensor as the pickle describes it (storage, offset, size, stride), not yet viewed.

    The pickle names no tensor when it rebuilds one (the state dict's key comes later), so
    the extent is checked in :func:`_materialize`, where the error can name the tensor.
    """

    def __init__(self, storage, storage_offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, storage_offset, size, stride


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    """``torch._utils._rebuild_tensor_v2`` for NumPy: a reference, viewed once checked."""
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *args):
    """``torch._utils._rebuild_parameter``: a Parameter is its data here."""
    return data


def _is_index(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _view(ref: _TensorRef, name: str, source: Path, budget: list[int]) -> np.ndarray:
    """The tensor `ref` as a NumPy array, after checking that every element it addresses
    lies inside its storage (a crafted size, stride or offset would otherwise read memory
    outside the buffer) and that it fits the import's byte budget."""
    where = f"{source}: tensor {name}"
    if not isinstance(ref.storage, _Storage):
        raise MaiSrError(f"{where}: its storage is not an archive storage")
    size, stride, offset = ref.size, ref.stride, ref.offset
    if not (isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list))
            and len(size) == len(stride) and len(size) <= 8
            and all(map(_is_index, size)) and all(map(_is_index, stride))
            and _is_index(offset)):
        raise MaiSrError(f"{where}: malformed size {size!r:.60}, stride {stride!r:.60} or "
                         f"offset {offset!r:.20}")
    array = ref.storage.array
    numel = int(np.prod(size, dtype=object)) if size else 1
    nbytes = numel * array.itemsize
    if nbytes > budget[0]:
        raise MaiSrError(f"{where}: {nbytes:,} bytes ({list(size)} x {array.dtype}) exceeds the "
                         f"import limit of {MAX_SOURCE_BYTES // 2**20} MiB for a mobile SR model")
    budget[0] -= nbytes
    if numel == 0:
        return np.zeros(size, dtype=array.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= array.size:
        raise MaiSrError(f"{where}: size {list(size)}, stride {list(stride)} and offset {offset} "
                         f"reach element {last} of storage {ref.storage.member}, which holds "
                         f"{array.size}")
    if not size:
        return array[offset].copy()
    view = np.lib.stride_tricks.as_strided(
        array[offset:], shape=tuple(size),
        strides=tuple(s * array.itemsize for s in stride), writeable=False)
    return np.array(view)


def _materialize(obj, name: str, source: Path, budget: list[int]):
    """`obj` with every :class:`_TensorRef` inside dicts and lists viewed (and checked)."""
    if isinstance(obj, _TensorRef):
        return _view(obj, name, source, budget)
    if isinstance(obj, dict):
        return type(obj)((k, _materialize(v, f"{name}.{k}" if name else str(k), source, budget))
                         for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v, f"{name}[{i}]", source, budget)
                         for i, v in enumerate(obj))
    return obj


ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): lambda storage, offset, size, stride:
        _rebuild_tensor_v2(storage, offset, size, stride),
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


def read_member(archive: zipfile.ZipFile, name: str, source: Path, budget: list[int]) -> bytes:
    """The bytes of one zip member, refused before inflating if its declared size exceeds
    what is left of `budget` (a one-item list of bytes, decremented). zipfile stops
    inflating at the declared size and checks the CRC, so a member cannot grow past it."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise MaiSrError(f"{source}: {name} missing from the archive") from None
    if info.file_size > budget[0]:
        raise MaiSrError(f"{source}: {name} inflates to {info.file_size:,} bytes, over the import "
                         f"limit of {MAX_SOURCE_BYTES // 2**20} MiB for a mobile SR model "
                         "(a decompression bomb or not a mobile model)")
    try:
        with archive.open(info) as member:
            data = member.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise MaiSrError(f"{source}: {name} is damaged ({exc})") from None
    if len(data) != info.file_size:
        raise MaiSrError(f"{source}: {name} is truncated ({len(data)} of {info.file_size} bytes)")
    budget[0] -= len(data)
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a torch zip checkpoint's data.pkl, admitting only tensor-rebuild globals."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, root: str, byteorder: str,
                 source: Path, budget: list[int]):
        super().__init__(io.BytesIO(data))
        self._archive, self._root, self._byteorder = archive, root, byteorder
        self._source, self._budget = source, budget
        self._storages: dict[str, _Storage] = {}

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
            raw = read_member(self._archive, name, self._source, self._budget)
            itemsize = storage_type.dtype.itemsize
            if len(raw) % itemsize:
                raise MaiSrError(f"{self._source}: storage {name} holds {len(raw)} bytes, not a "
                                 f"whole number of {storage_type.dtype} values")
            dtype = storage_type.dtype.newbyteorder("<" if self._byteorder == "little" else ">")
            array = np.frombuffer(raw, dtype=dtype).astype(storage_type.dtype)
            self._storages[key] = _Storage(array, name)
        return self._storages[key]


def read_checkpoint(path) -> object:
    """The unpickled object of a torch zip checkpoint (tensors as NumPy arrays).

    Nothing in the file runs: only the globals of :data:`ALLOWED_GLOBALS` are admitted. No
    tensor reads outside its storage, and at most :data:`MAX_SOURCE_BYTES` are inflated or
    copied; a file that breaks either rule is refused in one line naming the tensor or
    member.
    """
    path = Path(path)
    if not path.is_file():
        raise MaiSrError(f"{path}: not found")
    if not zipfile.is_zipfile(path):
        raise MaiSrError(f"{path}: not a zip checkpoint (legacy torch < 1.6 format or not a "
                         "torch file); re-save it with torch.save(state_dict) in torch >= 1.6")
    budget = [MAX_SOURCE_BYTES]
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise MaiSrError(f"{path}: damaged zip ({exc})") from None
    with archive:
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
            byteorder = read_member(archive, f"{root}/byteorder", path, budget) \
                .decode(errors="replace").strip()
            if byteorder not in ("little", "big"):
                raise MaiSrError(f"{path}: unknown byte order {byteorder!r:.20}")
        unpickler = _RestrictedUnpickler(read_member(archive, pickles[0], path, budget),
                                         archive, root, byteorder, path, budget)
        try:
            obj = unpickler.load()
        except MaiSrError:
            raise
        except Exception as exc:  # a damaged pickle raises many types
            raise MaiSrError(f"{path}: cannot read the checkpoint ({type(exc).__name__}: "
                             f"{str(exc)[:120]})") from None
    try:
        return _materialize(obj, "", path, budget)
    except RecursionError:
        raise MaiSrError(f"{path}: nested too deeply to be a state dict") from None


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
