"""Register images of simulated Modbus devices: engineering values packed into 16-bit words.

Written with :mod:`struct`, independently of the collector's decoder (``collectors.codec``), so a
test that polls a simulated device checks the decoder against a second implementation rather than
against its own inverse. ``order`` names where the value's bytes A (most significant) … D travel:
``ABCD`` big-endian, ``DCBA`` little-endian, ``BADC`` bytes swapped in each word, ``CDAB`` words
swapped (for 64-bit types the same swaps apply to all four words).
"""

from __future__ import annotations

import math
import struct

_FORMAT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q",
           "float32": "f", "float64": "d"}
_ORDERS = ("ABCD", "DCBA", "BADC", "CDAB")


def encode(value: float, dtype: str, order: str = "ABCD", scale: float = 1.0, offset: float = 0.0) -> list[int]:
    """The registers holding engineering ``value`` as a device would serve it.

    Integer types round to the nearest raw value and saturate at the type's range, as a real
    transmitter clips at its limits; a non-finite value for an integer type raises ValueError.
    A ``bool`` encodes to ``[0]`` or ``[1]`` (use :func:`set_bit` for a bit of a word).
    """
    if order not in _ORDERS:
        raise ValueError(f"unknown byte order {order!r}")
    # an exact integer stays exact (64-bit raw values beyond 2**53 do not survive a float)
    raw = value if isinstance(value, int) and scale == 1 and offset == 0 else (value - offset) / scale
    if dtype == "bool":
        return [1 if round(raw) else 0]
    fmt = _FORMAT[dtype]
    if fmt not in "fd":
        if not math.isfinite(raw):
            raise ValueError(f"cannot encode {value!r} as {dtype}")
        bits = 8 * struct.calcsize(fmt)
        lo, hi = (0, 2**bits - 1) if fmt.isupper() else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        raw = min(max(round(raw), lo), hi)
    data = struct.pack(">" + fmt, raw)  # ABCD: most significant byte first
    words = [data[i:i + 2] for i in range(0, len(data), 2)]
    if order in ("CDAB", "DCBA"):
        words.reverse()
    if order in ("BADC", "DCBA"):
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


def set_bit(word: int, bit: int, on: bool) -> int:
    """``word`` with ``bit`` (0 = least significant) set or cleared."""
    return word | (1 << bit) if on else word & ~(1 << bit) & 0xFFFF
