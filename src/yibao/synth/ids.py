"""Fixed-width identifiers and synthetic ID-card numbers, built as Arrow strings without loops.

>>> fixed_ids("P", np.array([1, 42]), 4).to_pylist()
['P0001', 'P0042']
>>> check_digit_ok("11010519491231002X"), check_digit_ok("110105194912310021")
(True, False)
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)


def _strings(chars: np.ndarray) -> pa.Array:
    """An (n, w) uint8 matrix of ASCII characters as n strings of width w."""
    n, w = chars.shape
    if n * w >= 2**31:
        raise ValueError("too many identifiers for one string array")
    offsets = np.arange(0, (n + 1) * w, w, dtype=np.int32) if n else np.zeros(1, dtype=np.int32)
    data = np.ascontiguousarray(chars, dtype=np.uint8)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def digits(numbers: np.ndarray, width: int) -> np.ndarray:
    """(n, width) matrix of decimal digits (0–9), zero-padded; refuses numbers that do not fit."""
    x = np.asarray(numbers, dtype=np.int64).copy()
    if len(x) and (x.min() < 0 or x.max() >= 10**width):
        raise ValueError(f"number does not fit in {width} digits")
    out = np.empty((len(x), width), dtype=np.int64)
    for k in range(width - 1, -1, -1):
        out[:, k] = x % 10
        x //= 10
    return out


_GROUP = (48 + np.arange(10_000)[:, None] // 10 ** np.arange(3, -1, -1) % 10).astype(np.uint8)  # "0000" … "9999"
_GROUP32 = _GROUP.view("<u4").ravel()  # the four ASCII digits of 0000–9999, one 32-bit word each


def ascii_digits(numbers: np.ndarray, width: int) -> np.ndarray:
    """(n, width) ASCII digits, zero-padded, four at a time from a lookup table (one 32-bit gather per group)."""
    x = np.asarray(numbers, dtype=np.int64)
    if len(x) and (x.min() < 0 or x.max() >= 10**width):
        raise ValueError(f"number does not fit in {width} digits")
    groups = -(-width // 4)
    words = np.empty((len(x), groups), dtype="<u4")
    for g in range(groups - 1, -1, -1):
        x, rest = np.divmod(x, 10_000)
        words[:, g] = _GROUP32[rest]
    return words.view(np.uint8).reshape(len(words), groups * 4)[:, groups * 4 - width:]


def fixed_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` followed by ``numbers`` zero-padded to ``width`` digits."""
    p = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    d = ascii_digits(numbers, width)
    chars = np.empty((len(d), len(p) + width), dtype=np.uint8)
    chars[:, : len(p)] = p
    chars[:, len(p):] = d
    return _strings(chars)


def certnos(area: np.ndarray, birth: np.ndarray, seq: np.ndarray) -> pa.Array:
    """18-digit resident ID numbers (GB 11643): area (6), birth date (datetime64[D]), sequence (3),
    check digit. The sequence's parity carries the sex (odd male, even female)."""
    birth = np.asarray(birth, dtype="datetime64[D]")
    year = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    month_start = birth.astype("datetime64[M]")
    month = month_start.astype(np.int64) % 12 + 1
    day = (birth - month_start.astype("datetime64[D]")).astype(np.int64) + 1
    body = np.concatenate([digits(area, 6), digits(year * 10000 + month * 100 + day, 8), digits(seq, 3)], axis=1)
    check = CHECK[(body @ WEIGHTS) % 11]
    chars = np.empty((len(body), 18), dtype=np.uint8)
    chars[:, :17] = 48 + body
    chars[:, 17] = check
    return _strings(chars)


def check_digit_ok(certno: str) -> bool:
    """Whether an 18-character ID number carries the right GB 11643 check digit."""
    if len(certno) != 18 or not certno[:17].isdigit():
        return False
    total = sum(int(c) * int(w) for c, w in zip(certno[:17], WEIGHTS))
    return "10X98765432"[total % 11] == certno[17].upper()
