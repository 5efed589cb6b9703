"""Read a pytorch_model.bin state dict without torch and without running its pickle.

A .bin written by torch.save (torch >= 1.6) is a zip archive:

    <name>/data.pkl     a pickle of the state dict: {parameter name: tensor}
    <name>/data/<key>   one raw little-endian byte record per storage (a tensor's memory)
    <name>/byteorder    "little" or "big" (absent before torch 2.1: little)

Unpickling is running a small stack program, and an ordinary pickle may call any
Python function (os.system included). So pickle.load is never used here. Instead,
this module first checks every opcode and every global the program names against an
allowlist (the same idea as torch.load(weights_only=True)):

    collections.OrderedDict            the state dict, and tensors' empty hook dicts
    torch._utils._rebuild_tensor_v2    a tensor: (storage, offset, size, stride, ...)
    torch._utils._rebuild_parameter    an nn.Parameter wrapping such a tensor
    torch.FloatStorage, HalfStorage, BFloat16Storage, LongStorage, ...   storage dtypes

and refuses the file, before anything runs, if it names anything else. Only then does
`_Machine` interpret the program, with its own stand-ins for those names: a storage
becomes a `_Storage` (record key, dtype, element count) and a tensor a `_Tensor` (storage,
offset, size, stride), so running the pickle allocates nothing big. Each tensor is then
checked against its storage, by name, and only after that is its data/ record read
(stored records only: torch.save never compresses, and a compressed record could inflate
to any size) and a strided copy made. bfloat16, which NumPy lacks, becomes float32
(exactly: bf16 is the top half of a float32).
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickletools
import reprlib
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from mobilevit_np.checkpoints.safetensors_io import WeightsError, read_metadata, widen_bfloat16, write_safetensors
from mobilevit_np.files import check_destination

BFLOAT16 = "bfloat16"  # marker: stored as uint16, widened to float32 when a tensor is built
STORAGE_DTYPES = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": BFLOAT16,
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}
# Storages torch.load(weights_only=True) accepts that hold values no MobileViT tensor can use
# (complex, quantised): refused as an unsupported dtype, naming the tensor.
UNSUPPORTED_STORAGES = {
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    "QInt8Storage": "qint8",
    "QUInt8Storage": "quint8",
    "QInt32Storage": "qint32",
    "QUInt4x2Storage": "quint4x2",
    "QUInt2x4Storage": "quint2x4",
    "UntypedStorage": "untyped bytes",  # only with _rebuild_tensor_v3, which names the real dtype
}
# torch.save writes dtypes without a typed storage (float8, uint16, uint32, ...) as an
# UntypedStorage (raw bytes) and names the dtype in _rebuild_tensor_v3; the dtypes it can
# name there are torch's own (weights_only accepts them all). None of them is read here.
TORCH_DTYPES = (
    "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2",
    "uint16", "uint32", "uint64", "complex32", "complex64", "complex128", "bits1x8", "bits2x4", "bits4x2",
    "bits8", "bits16", "qint8", "quint8", "qint32", "quint4x2", "quint2x4",
    *(f"int{n}" for n in range(1, 8)), *(f"uint{n}" for n in range(1, 8)),
    "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
)  # fmt: skip
# A load returns at most this many bytes per byte of the file: bfloat16 widens to float32
# (2x), and a tensor may sit under two names (tied weights). A pickle naming one storage a
# thousand times (memo reuse) asks for far more and is refused before anything is copied.
MAX_GROWTH = 4

# The pickle opcodes torch.save's protocol-2 state dicts use (plus the protocol-4 framing
# ones). Anything else (INST, OBJ, NEWOBJ, EXT*, ...) is refused.
ALLOWED_OPCODES = {
    "PROTO", "FRAME", "STOP", "MARK", "GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD", "BINPERSID",
    "EMPTY_DICT", "EMPTY_LIST", "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3",
    "SETITEM", "SETITEMS", "APPEND", "APPENDS",
    "BINPUT", "LONG_BINPUT", "MEMOIZE", "BINGET", "LONG_BINGET",
    "BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT", "NONE", "NEWTRUE", "NEWFALSE",
    "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "SHORT_BINSTRING", "BINSTRING",
}  # fmt: skip
STRING_OPCODES = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "SHORT_BINSTRING", "BINSTRING"}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # the number torch < 1.6 pickled first, before any tensor
# What zipfile raises for an archive whose directory or headers are corrupt (offsets past the
# end, impossible sizes, undecodable names, unknown versions).
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
    EOFError,
    OSError,
    ValueError,
    OverflowError,
)
# What a corrupt program makes the interpreter below trip over (stack underflow, wrong arity, ...).
PROGRAM_ERRORS = (IndexError, KeyError, TypeError, ValueError, AttributeError, RecursionError)
# A state dict nests tuples three deep at most (a tensor's arguments hold its size and stride);
# a hostile program could nest them 100,000 deep and crash the interpreter when one is hashed.
MAX_TUPLE_NESTING = 8


class UnsafePickleError(WeightsError):
    """The pickle names something outside the allowlist; nothing in it was run."""


# ------------------------------------------------------------ the stand-ins


class _StorageType:
    """What the global `torch.FloatStorage` (etc.) stands for here: its dtype (None: unsupported)."""

    def __init__(self, name: str, module: str = "torch") -> None:
        self.name, self.module = name, module
        self.dtype = STORAGE_DTYPES.get(name)

    def __repr__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class _TorchDtype:
    """What a global like `torch.uint16` stands for here: its name."""

    name: str

    def __repr__(self) -> str:
        return f"torch.{self.name}"


@dataclass(frozen=True)
class _Storage:
    """A storage the pickle refers to: the data/<key> record holding `numel` values of `dtype`."""

    type_name: str
    dtype: Any  # a NumPy dtype, or BFLOAT16
    key: str
    numel: int


@dataclass(frozen=True)
class _Tensor:
    """What torch._utils._rebuild_tensor_v2 builds: storage[offset + sum(i_k * stride_k)], not yet read."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    unsupported: str | None = None  # the torch dtype's name, when NumPy-side reading is not offered

    @property
    def numel(self) -> int:
        return math.prod(self.size)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    """torch._utils._rebuild_tensor_v2, checked for types only; _tensor_array reads it later."""
    if not isinstance(storage, _Storage):
        raise WeightsError(f"malformed tensor: built from a {type(storage).__name__}, not a storage")
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)):
        raise WeightsError(f"malformed tensor: size {size!r} and stride {stride!r} must be tuples of equal length")
    if not all(_is_count(v) for v in (storage_offset, *size, *stride)):
        raise WeightsError(
            f"malformed tensor: offset {storage_offset!r}, size {size!r}, stride {stride!r} must be "
            "non-negative integers"
        )
    if backward_hooks:
        raise UnsafePickleError("a tensor carries backward hooks; a plain state dict has none")
    unsupported = UNSUPPORTED_STORAGES.get(storage.type_name)
    return _Tensor(storage, storage_offset, size, stride, unsupported)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    """torch._utils._rebuild_tensor_v3: a tensor over an UntypedStorage, its dtype named (float8, uint16, ...)."""
    if not isinstance(dtype, _TorchDtype):
        raise WeightsError(f"malformed tensor: dtype {reprlib.repr(dtype)} is not a torch dtype")
    tensor = _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata)
    return dataclasses.replace(tensor, unsupported=dtype.name)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    """torch._utils._rebuild_parameter: an nn.Parameter is its tensor here."""
    if not isinstance(data, _Tensor):
        raise WeightsError(f"malformed parameter: wraps a {type(data).__name__}, not a tensor")
    if backward_hooks:
        raise UnsafePickleError("a parameter carries backward hooks; a plain state dict has none")
    return data


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.storage", "UntypedStorage"): _StorageType("UntypedStorage", "torch.storage"),  # torch.save's spelling
    **{("torch", name): _StorageType(name) for name in (*STORAGE_DTYPES, *UNSUPPORTED_STORAGES)},
    **{("torch", name): _TorchDtype(name) for name in TORCH_DTYPES},
}
CALLABLE_GLOBALS = (OrderedDict, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter)


# ---------------------------------------------------------- check, then run


def check_pickle(program: bytes, source: str) -> None:
    """Refuse `program` unless every opcode and global is on the allowlist. Runs nothing."""
    recent_strings: list[str] = []  # for STACK_GLOBAL, whose names are the two strings pushed just before
    try:
        for opcode, arg, pos in pickletools.genops(program):  # only parses opcodes and their arguments
            _check_opcode(opcode.name, arg, pos, recent_strings, source)
    except WeightsError:
        raise
    except ValueError as e:  # truncated or garbled program
        raise WeightsError(f"{source}: corrupt pickle ({e})") from None


def _check_opcode(name: str, arg: Any, pos: int, recent_strings: list[str], source: str) -> None:
    """Refuse one opcode unless it, and any global it names, is on the allowlist."""
    if name not in ALLOWED_OPCODES:
        raise UnsafePickleError(
            f"{source}: refused pickle opcode {name} at byte {pos}; a state dict never needs it (nothing was executed)"
        )
    if name == "GLOBAL":
        _check_global(*arg.split(" ", 1), source, pos)
    elif name == "STACK_GLOBAL":
        if len(recent_strings) < 2:
            raise UnsafePickleError(f"{source}: refused a computed global at byte {pos} (nothing was executed)")
        _check_global(recent_strings[-2], recent_strings[-1], source, pos)
    if name in STRING_OPCODES:
        recent_strings.append(arg if isinstance(arg, str) else arg.decode("latin-1"))
    elif name not in ("MEMOIZE", "BINPUT", "LONG_BINPUT"):
        recent_strings.clear()


def _check_global(module: Any, name: Any, source: str, pos: int) -> None:
    if not isinstance(module, str) or not isinstance(name, str) or (module, name) not in ALLOWED_GLOBALS:
        raise UnsafePickleError(
            f"{source}: refused to load: the pickle calls for {module}.{name} (at byte {pos}), which is not on the "
            "allowlist of tensor storages, _rebuild_tensor_v2 and OrderedDict (the rule of "
            "torch.load(weights_only=True)); nothing was executed"
        )


class _Machine:
    """A pickle interpreter for the allowlisted opcodes, with stand-ins for torch's globals."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.stack: list[Any] = []
        self.marks: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.nesting: dict[int, int] = {}  # id(tuple) -> how deep it nests tuples
        self.tuples: list[tuple] = []  # keeps those tuples alive, so their ids stay theirs

    def pop_mark(self) -> list[Any]:
        items, self.stack = self.stack, self.marks.pop()
        return items

    def run(self, program: bytes) -> Any:
        """The object the program builds; a corrupt program (e.g. popping an empty stack) is a WeightsError."""
        try:
            return self._run(program)
        except WeightsError:
            raise
        except PROGRAM_ERRORS as e:
            raise WeightsError(f"{self.source}: corrupt pickle ({type(e).__name__}: {e})") from None

    def _run(self, program: bytes) -> Any:
        for opcode, arg, pos in pickletools.genops(program):
            name, stack = opcode.name, self.stack
            if name in ("PROTO", "FRAME"):
                continue
            elif name == "STOP":
                return stack.pop()
            elif name == "MARK":
                self.marks.append(stack)
                self.stack = []
            elif name in STRING_OPCODES or name in ("BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT"):
                stack.append(arg)
            elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
                stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
            elif name in ("EMPTY_DICT", "EMPTY_LIST", "EMPTY_TUPLE"):
                stack.append({"EMPTY_DICT": dict, "EMPTY_LIST": list, "EMPTY_TUPLE": tuple}[name]())
            elif name == "TUPLE":
                items = self.pop_mark()
                self.stack.append(self._tuple(items))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                items = stack[-n:]
                del stack[-n:]
                stack.append(self._tuple(items))
            elif name in ("BINPUT", "LONG_BINPUT"):
                self.memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                self.memo[len(self.memo)] = stack[-1]
            elif name in ("BINGET", "LONG_BINGET"):
                if arg not in self.memo:
                    raise WeightsError(f"{self.source}: corrupt pickle: memo entry {arg} read before it is written")
                stack.append(self.memo[arg])
            elif name == "SETITEM":
                value, key = stack.pop(), stack.pop()
                self._container(dict)[self._key(key)] = value
            elif name == "SETITEMS":
                items = self.pop_mark()
                self._container(dict).update(zip(map(self._key, items[::2]), items[1::2], strict=True))
            elif name == "APPEND":
                self._container(list).append(stack.pop())
            elif name == "APPENDS":
                items = self.pop_mark()
                self._container(list).extend(items)
            elif name == "GLOBAL":
                module, global_name = arg.split(" ", 1)
                _check_global(module, global_name, self.source, pos)
                stack.append(ALLOWED_GLOBALS[(module, global_name)])
            elif name == "STACK_GLOBAL":
                global_name, module = stack.pop(), stack.pop()
                _check_global(module, global_name, self.source, pos)
                stack.append(ALLOWED_GLOBALS[(module, global_name)])
            elif name == "REDUCE":
                args, func = stack.pop(), stack.pop()
                if not any(func is f for f in CALLABLE_GLOBALS) or not isinstance(args, tuple):
                    raise UnsafePickleError(f"{self.source}: refused a call of {reprlib.repr(func)} at byte {pos}")
                stack.append(self._call(func, args, pos))
            elif name == "BUILD":
                state = stack.pop()
                # An OrderedDict state dict may carry `_metadata` (module versions): not needed.
                if not isinstance(stack[-1], OrderedDict) or not isinstance(state, dict):
                    raise UnsafePickleError(f"{self.source}: refused to set the state of a {type(stack[-1]).__name__}")
            elif name == "BINPERSID":
                stack.append(self._persistent_load(stack.pop()))
            else:  # check_pickle lets nothing else through
                raise UnsafePickleError(f"{self.source}: unexpected opcode {name}")
        raise WeightsError(f"{self.source}: corrupt pickle: no STOP opcode")

    def _call(self, func: Any, args: tuple, pos: int) -> Any:
        """func(*args) for an allowlisted func; its complaints name the file and the byte."""
        try:
            return func(*args)
        except WeightsError as e:
            raise type(e)(f"{self.source}: {e} (at byte {pos})") from None
        except TypeError:  # wrong number of arguments
            raise WeightsError(
                f"{self.source}: corrupt pickle: {func.__name__} called with {len(args)} arguments at byte {pos}"
            ) from None

    def _tuple(self, items: list[Any]) -> tuple:
        """A tuple of `items`, refused when tuples nest deeper than any state dict needs."""
        result = tuple(items)
        depth = 1 + max((self.nesting.get(id(item), 0) for item in items if isinstance(item, tuple)), default=0)
        if depth > MAX_TUPLE_NESTING:
            raise UnsafePickleError(f"{self.source}: refused tuples nested {depth} deep; a state dict needs 3 at most")
        self.nesting[id(result)] = depth
        self.tuples.append(result)
        return result

    def _key(self, key: Any) -> str:
        """Every dict in a state dict (the tensors, their metadata, their empty hooks) has string keys."""
        if not isinstance(key, str):
            raise WeightsError(f"{self.source}: corrupt state dict: a dict key is a {type(key).__name__}, not a name")
        return key

    def _container(self, kind: type) -> Any:
        if not self.stack or not isinstance(self.stack[-1], kind):
            raise WeightsError(f"{self.source}: corrupt pickle: expected a {kind.__name__} on the stack")
        return self.stack[-1]

    def _persistent_load(self, pid: Any) -> _Storage:
        """("storage", storage type, key, location, numel) -> a _Storage (its record is read later)."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise UnsafePickleError(
                f"{self.source}: refused a persistent id {reprlib.repr(pid)}; only tensor storages are allowed"
            )
        _, storage_type, key, _location, numel = pid
        if not isinstance(key, str) or not _is_count(numel):
            raise WeightsError(f"{self.source}: malformed storage reference {reprlib.repr(pid)}")
        return _Storage(storage_type.name, storage_type.dtype, key, numel)


# ------------------------------------------------------------------ the file


def _archive_prefix(names: list[str], source: str) -> str:
    pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pickles) != 1:
        raise WeightsError(f"{source}: not a torch.save archive (expected one data.pkl, found {len(pickles)})")
    return pickles[0][: -len("data.pkl")]


def _refuse_non_zip(path: str) -> None:
    with open(path, "rb") as f:
        head = f.read(512)  # a legacy tar archive says "ustar" at byte 257
    if head[:1] == b"\x80" or LEGACY_MAGIC.to_bytes(10, "little") in head[:64] or head[257:262] == b"ustar":
        raise WeightsError(
            f"{path}: legacy (pre-1.6) PyTorch file format, which is unsupported here; re-save it with torch >= 1.6 "
            "(torch.save(torch.load(path, weights_only=True), path)) or convert it to safetensors "
            "(transformers: model.save_pretrained(folder, safe_serialization=True))"
        )
    raise WeightsError(f"{path}: not a PyTorch checkpoint (neither a torch.save zip archive nor a legacy pickle)")


def _read_record(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str, limit: int) -> bytes:
    """One record's bytes, refusing what torch.save never writes before reading any of it.

    torch.save stores records uncompressed, so a record's size is bounded by the file's own
    size (`limit`); a compressed record could inflate to any size (a zip bomb) and is refused.
    """
    _check_stored(info, source, limit)
    try:
        return archive.read(info)
    except ZIP_ERRORS as e:
        raise WeightsError(f"{source}: corrupt zip archive: record {info.filename} ({type(e).__name__}: {e})") from None


def _check_stored(info: zipfile.ZipInfo, source: str, limit: int) -> None:
    """Refuse a record torch.save would not write (encrypted, compressed, larger than the file)."""
    if info.flag_bits & 0x1:
        raise WeightsError(f"{source}: record {info.filename} is encrypted; torch.save never encrypts")
    if info.compress_type != zipfile.ZIP_STORED:
        raise WeightsError(
            f"{source}: record {info.filename} is compressed; torch.save stores records uncompressed, and a compressed "
            "record could expand to any size (a zip bomb), so it is refused; re-save the file with torch.save"
        )
    if info.file_size != info.compress_size or info.file_size > limit:
        raise WeightsError(
            f"{source}: corrupt zip archive: record {info.filename} claims {info.file_size} bytes "
            f"({info.compress_size} stored), more than the {limit} it can hold"
        )


def _byteorder(archive: zipfile.ZipFile, records: set[str], prefix: str, source: str) -> str:
    """ "little" or "big", from the byteorder record (torch >= 2.1 writes one; before, always little)."""
    if prefix + "byteorder" not in records:
        return "little"
    raw = _read_record(archive, archive.getinfo(prefix + "byteorder"), source, limit=16)
    byteorder = raw.decode("ascii", errors="replace").strip()
    if byteorder not in ("little", "big"):
        raise WeightsError(f"{source}: unknown byteorder record {byteorder!r}")
    return byteorder


def _record_dtype(storage: _Storage, byteorder: str) -> np.dtype:
    """How a storage's record is laid out: its dtype in the file's byte order (bfloat16 as raw uint16)."""
    dtype = np.dtype("<u2") if storage.dtype is BFLOAT16 else storage.dtype
    return dtype.newbyteorder("<" if byteorder == "little" else ">")


def _array_dtype(storage: _Storage) -> np.dtype:
    """The dtype of the arrays a storage's tensors become: native order, bfloat16 as float32."""
    return np.dtype(np.float32) if storage.dtype is BFLOAT16 else storage.dtype.newbyteorder("=")


def _check_tensor(name: str, tensor: _Tensor, source: str) -> None:
    """Refuse a tensor whose dtype is not read here or that reaches outside its storage; reads nothing."""
    where = f"{source}: tensor {name!r}"
    storage = tensor.storage
    if tensor.unsupported is not None:
        raise WeightsError(
            f"{where}: unsupported dtype {tensor.unsupported} (readable: float64, float32, float16, bfloat16, "
            "int64, int32, int16, int8, uint8, bool); convert it to float32 in torch and save it again"
        )
    if tensor.numel == 0:
        return
    last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.size, tensor.stride, strict=True))
    if last >= storage.numel:
        raise WeightsError(f"{where} reaches element {last} of storage {storage.key!r}, which holds {storage.numel}")
    if tensor.numel > storage.numel:
        raise WeightsError(
            f"{where} has {tensor.numel} elements but its storage {storage.key!r} holds {storage.numel}: overlapping "
            "strides (an expanded tensor) are not supported; save tensor.contiguous() instead"
        )


def _check_growth(tensors: dict[str, _Tensor], file_size: int, source: str) -> None:
    """Refuse a file whose tensors, as arrays, would take more than MAX_GROWTH times its size."""
    total = sum(t.numel * _array_dtype(t.storage).itemsize for t in tensors.values())
    if total > MAX_GROWTH * file_size:
        storages = {t.storage.key for t in tensors.values()}
        raise WeightsError(
            f"{source}: its {len(tensors)} tensors (over {len(storages)} storages) would take {total} bytes, more "
            f"than {MAX_GROWTH} x the file's {file_size} bytes; a state dict that names one storage under many "
            "tensors is refused (nothing was read)"
        )


def _is_c_contiguous(size: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    expected = 1
    for n, s in zip(reversed(size), reversed(stride), strict=True):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


def _tensor_array(tensor: _Tensor, data: np.ndarray, name: str, source: str) -> np.ndarray:
    """A checked _Tensor as a C-contiguous array: a view of its decoded storage `data` when its strides
    allow (so tensors sharing a storage share memory, as in torch), else a copy."""
    size, stride = tensor.size, tensor.stride
    try:
        if tensor.numel == 0:
            return np.zeros(size, dtype=data.dtype)
        if _is_c_contiguous(size, stride):
            return data[tensor.offset : tensor.offset + tensor.numel].reshape(size)
        view = np.lib.stride_tricks.as_strided(
            data[tensor.offset :], shape=size, strides=[s * data.itemsize for s in stride], writeable=False
        )
        return np.array(view, order="C")  # a transposed view: a contiguous copy (numel <= the storage's)
    except ValueError as e:  # NumPy's own limits (more than 64 dimensions, a shape too big to describe)
        raise WeightsError(f"{source}: tensor {name!r}: size {size} cannot be built ({e})") from None


def _check_record(
    archive: zipfile.ZipFile,
    records: set[str],
    prefix: str,
    storage: _Storage,
    seen: dict[str, _Storage],
    byteorder: str,
    source: str,
) -> None:
    """A storage's data record must exist, be stored uncompressed and hold exactly its elements; reads nothing."""
    if storage.key in seen:
        if seen[storage.key] != storage:
            raise WeightsError(
                f"{source}: storage {storage.key!r} is declared twice, as {seen[storage.key]} and as {storage}"
            )
        return
    seen[storage.key] = storage
    record = f"{prefix}data/{storage.key}"
    if record not in records:
        raise WeightsError(
            f"{source}: the pickle refers to storage {storage.key!r}, but data record {record} is missing"
        )
    info, itemsize = archive.getinfo(record), _record_dtype(storage, byteorder).itemsize
    if info.file_size != storage.numel * itemsize:
        raise WeightsError(
            f"{source}: data record {record} holds {info.file_size} bytes, but {storage.numel} x "
            f"{storage.type_name} elements need {storage.numel * itemsize}"
        )
    _check_stored(info, source, os.path.getsize(source))


def _load_archive(archive: zipfile.ZipFile, path: str) -> dict[str, np.ndarray]:
    size = os.path.getsize(path)
    names = archive.namelist()  # a new list on every call: read it once, and look records up in a set
    records = set(names)
    prefix = _archive_prefix(names, path)
    program = _read_record(archive, archive.getinfo(prefix + "data.pkl"), path, size)
    check_pickle(program, path)  # raises before anything is interpreted
    state_dict = _Machine(path).run(program)
    if not isinstance(state_dict, dict):
        raise WeightsError(f"{path}: holds a {type(state_dict).__name__}, not a state dict of named tensors")
    for name, value in state_dict.items():
        if not (isinstance(name, str) and isinstance(value, _Tensor)):
            raise WeightsError(f"{path}: entry {name!r} is a {type(value).__name__}; a state dict holds named tensors")
        _check_tensor(name, value, path)
    byteorder = _byteorder(archive, records, prefix, path)
    storages: dict[str, _Storage] = {}  # key -> its declaration, each record checked before any is read
    for tensor in state_dict.values():
        if tensor.numel:
            _check_record(archive, records, prefix, tensor.storage, storages, byteorder, path)
    _check_growth(state_dict, size, path)
    decoded: dict[str, np.ndarray] = {}

    def read_storage(storage: _Storage) -> np.ndarray:
        """A storage's values as a native array, decoded once however many tensors use it."""
        if storage.key not in decoded:
            info = archive.getinfo(f"{prefix}data/{storage.key}")
            raw = np.frombuffer(_read_record(archive, info, path, size), dtype=_record_dtype(storage, byteorder))
            decoded[storage.key] = (
                widen_bfloat16(raw) if storage.dtype is BFLOAT16 else raw.astype(_array_dtype(storage))
            )
        return decoded[storage.key]

    arrays: dict[_Tensor, np.ndarray] = {}  # one array per distinct tensor, however many names it has
    for name, tensor in state_dict.items():
        if tensor not in arrays:
            data = read_storage(tensor.storage) if tensor.numel else np.empty(0, _array_dtype(tensor.storage))
            arrays[tensor] = _tensor_array(tensor, data, name, path)
    return {name: arrays[tensor] for name, tensor in state_dict.items()}


def load_torch_pickle(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The state dict in a torch.save zip file (pytorch_model.bin) as {name: NumPy array}."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"file not found: {path}")
    try:
        archive = zipfile.ZipFile(path) if zipfile.is_zipfile(path) else None  # is_zipfile too can raise
    except ZIP_ERRORS as e:
        raise WeightsError(f"{path}: corrupt zip archive ({type(e).__name__}: {e})") from None
    if archive is None:
        _refuse_non_zip(path)
    with archive:
        return _load_archive(archive, path)


# -------------------------------------------------------------- conversion


def convert(bin_path: str | os.PathLike, out_path: str | os.PathLike | None = None, overwrite: bool = False) -> str:
    """pytorch_model.bin -> model.safetensors (beside it unless `out_path` is given). Returns the new path.

    bfloat16 tensors are written as float32 (NumPy has no bfloat16); the values are unchanged.
    """
    bin_path = os.fspath(bin_path)
    out_path = os.path.join(os.path.dirname(bin_path), "model.safetensors") if out_path is None else os.fspath(out_path)
    check_destination(out_path, overwrite, sources=[bin_path])  # before reading the whole .bin
    write_safetensors(load_torch_pickle(bin_path), out_path, overwrite=overwrite, sources=[bin_path])
    return out_path


def _source_stamp(bin_path: str) -> dict[str, str]:
    """What identifies the .bin a safetensors copy was made from (metadata values are strings)."""
    stat = os.stat(bin_path)
    return {
        "converted_from": os.path.basename(bin_path),
        "source_size": str(stat.st_size),
        "source_mtime_ns": str(stat.st_mtime_ns),
    }


def is_stale_copy(safetensors_path: str | os.PathLike, bin_path: str | os.PathLike) -> bool:
    """True when `safetensors_path` was converted by load_and_convert from a .bin that has changed since."""
    if not os.path.isfile(bin_path):
        return False
    metadata = read_metadata(safetensors_path)
    if metadata.get("converted_from") != os.path.basename(bin_path):
        return False  # not our conversion: a checkpoint may ship both files
    return any(metadata.get(k) != v for k, v in _source_stamp(os.fspath(bin_path)).items())


def load_and_convert(bin_path: str | os.PathLike, overwrite: bool = False) -> dict[str, np.ndarray]:
    """Read pytorch_model.bin safely and save model.safetensors beside it for later loads.

    The copy records the .bin's size and modification time, so a .bin replaced later is
    noticed (is_stale_copy) rather than silently shadowed by the old copy.
    """
    bin_path = os.fspath(bin_path)
    stamp = _source_stamp(bin_path)
    tensors = load_torch_pickle(bin_path)
    out_path = os.path.join(os.path.dirname(bin_path), "model.safetensors")
    try:
        write_safetensors(tensors, out_path, overwrite=overwrite, metadata=stamp, sources=[bin_path])
    except (OSError, WeightsError) as e:  # a full disk, a name safetensors cannot hold: the tensors are still good
        warnings.warn(
            f"read {bin_path} with the allowlist reader, but could not save {out_path} ({e}); it will be read "
            "again next time",
            stacklevel=3,
        )
    else:
        warnings.warn(
            f"converted {bin_path} to {out_path} (allowlist reader, torch not imported); later loads read the "
            "safetensors file",
            stacklevel=3,
        )
    return tensors
