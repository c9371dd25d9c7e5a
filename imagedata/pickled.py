"""Read a pickled NumPy array without unpickling it.

animal-mnist ships its arrays as gzip'd pickles. Unpickling runs code named in the file,
so instead we walk the opcodes with :mod:`pickletools`, accept only the exact layout
``numpy.ndarray.__reduce__`` produces for a plain array, and build the array from the raw
byte payload.
"""

from __future__ import annotations

import gzip
import pickletools
from pathlib import Path

import numpy as np

from forkpoint.contract.errors import DataError

_MULTIARRAY = {"numpy.core.multiarray", "numpy._core.multiarray"}  # NumPy 1.x / 2.x spelling
_DTYPES = {"u1", "i1", "u2", "i2", "i4", "u4", "i8", "u8", "f4", "f8"}
_INT_OPS = {"BININT", "BININT1", "BININT2", "LONG1"}
_BYTES_OPS = {"BINBYTES", "BINBYTES8", "SHORT_BINBYTES"}


def read_pickled_ndarray(path: Path) -> np.ndarray:
    """The array in a (gzip'd) protocol-4 pickle of one plain ndarray, or DataError."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        ops = [(op.name, arg) for op, arg, _ in pickletools.genops(raw)]
    except Exception as exc:  # malformed stream
        raise DataError(f"{path} is not a readable pickle ({exc}): reinstall the package that ships it") from exc

    def bad(why: str) -> DataError:
        return DataError(f"{path} is not a plain pickled NumPy array ({why}): reinstall the package that ships it")

    strings = [a for n, a in ops if n.endswith("UNICODE")]
    if (len(strings) != 7 or strings[0] not in _MULTIARRAY
            or strings[1:5] != ["_reconstruct", "numpy", "ndarray", "dtype"]):
        raise bad(f"unexpected globals {strings[:5]}")
    code, order = strings[5], strings[6]
    if code not in _DTYPES or order not in {"<", ">", "|", "="}:
        raise bad(f"dtype {order}{code} not allowed")
    shape = _shape(ops)
    payloads = [i for i, (n, a) in enumerate(ops) if n in _BYTES_OPS and len(a) > 1]
    if shape is None or len(payloads) != 1 or ops[payloads[0] - 1][0] not in ("NEWFALSE", "NEWTRUE"):
        raise bad("no shape, no order flag or more than one payload")
    fortran = ops[payloads[0] - 1][0] == "NEWTRUE"
    payload = ops[payloads[0]][1]
    dtype = np.dtype(("<" if order == "=" else order) + code if order != "|" else code)
    if len(payload) != int(np.prod(shape)) * dtype.itemsize:
        raise bad(f"payload of {len(payload)} bytes does not fit shape {shape}")
    array = np.frombuffer(payload, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return np.ascontiguousarray(array, dtype=dtype.newbyteorder("="))


def _shape(ops: list[tuple[str, object]]) -> tuple[int, ...] | None:
    """Shape from the ndarray state tuple ``(version, shape, dtype, fortran, data)``."""
    reduces = [i for i, (n, _) in enumerate(ops) if n == "REDUCE"]
    if not reduces:
        return None
    i = reduces[0] + 1
    while i < len(ops) and ops[i][0] != "MARK":
        i += 1
    i += 2  # skip MARK and the state version number
    dims: list[int] = []
    if i < len(ops) and ops[i][0] == "MARK":  # shapes of 4+ dims use MARK ... TUPLE
        i += 1
    while i < len(ops) and ops[i][0] in _INT_OPS:
        dims.append(int(ops[i][1]))
        i += 1
    if i >= len(ops) or not ops[i][0].startswith("TUPLE") or any(d < 0 for d in dims):
        return None
    if ops[i][0] == "EMPTY_TUPLE":
        dims = []
    return tuple(dims)
