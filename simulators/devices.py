"""Device templates for the demo, the farms and the tests: lists of TOML-shaped point dicts.

Each template returns ``[[devices.points]]`` entries as plain dicts (the shape of the TOML file),
so a caller can put them under a device dict and validate the whole with
``gateway.config.parse_config``. ``modbus_device`` builds such a device dict. ``coverage_points``
is the codec's test device: one point per data type and byte order, bits of a word, input
registers, coils and discrete inputs, with offsets chosen so that raw values use the sign bit and
the high words.
"""

from __future__ import annotations

from typing import Any

PointDict = dict[str, Any]

ORDERS: tuple[str, ...] = ("ABCD", "CDAB", "BADC", "DCBA")
NUMERIC_DTYPES: tuple[str, ...] = (
    "int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64",
)
_WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "int64": 4, "uint64": 4,
          "float64": 4}

# (scale, offset) per dtype for the coverage device: a temperature around 25 becomes a raw value
# that is negative for signed types and beyond the signed range for unsigned ones.
COVERAGE_SCALING: dict[str, tuple[float, float]] = {
    "int16": (0.5, 10_000.0),  # raw about -19950
    "uint16": (1.0, -60_000.0),  # raw about 60025
    "int32": (0.01, 10_000_000.0),  # raw about -999_997_500
    "uint32": (1.0, -3_000_000_000.0),  # raw about 3e9, above 2**31
    "float32": (1.0, 0.0),
    "int64": (1.0, 1e15),  # raw about -1e15: all four words in use
    "uint64": (1.0, -1e15),
    "float64": (0.001, 0.0),
}


def gas_detector_points(base: int = 0) -> list[PointDict]:
    """A gas detector controller: CH4 %LEL (float32), H2S ppm (uint16 tenths), O2 %VOL (int16 × 0.01)."""
    return [
        {"key": "ch4", "kind": "combustible_gas", "unit": "%LEL", "register": "holding",
         "address": base, "dtype": "float32", "order": "ABCD"},
        {"key": "h2s", "kind": "toxic_gas", "gas": "h2s", "unit": "ppm", "register": "holding",
         "address": base + 2, "dtype": "uint16", "scale": 0.1},
        {"key": "o2", "kind": "oxygen", "unit": "%VOL", "register": "holding",
         "address": base + 3, "dtype": "int16", "scale": 0.01},
    ]


def temperature_transmitter_points(channels: int = 1, base: int = 0, high: float = 60.0) -> list[PointDict]:
    """A temperature transmitter with ``channels`` float32 inputs (word-swapped, as many send)."""
    return [
        {"key": f"t{i + 1}", "kind": "temperature", "unit": "°C", "register": "input",
         "address": base + 2 * i, "dtype": "float32", "order": "CDAB", "high": high}
        for i in range(channels)
    ]


def status_word_points(base: int = 0, key: str = "run_status", alarm_mask: int = 0x0006) -> list[PointDict]:
    """An equipment status word (uint16); ``alarm_mask`` marks the bits that mean fault or trip."""
    return [
        {"key": key, "kind": "status", "register": "holding", "address": base, "dtype": "uint16",
         "alarm_mask": alarm_mask},
    ]


def coverage_points(bit_count: int = 8, far_address: int = 1000) -> list[PointDict]:
    """One point per numeric dtype × byte order, plus bits of a word, input registers, coils and
    discrete inputs, and one point far from the rest (so the device needs several requests).

    Bool points with an even index use offset -1 (the raw bit is 1, the value 0), the others
    offset 0 (raw 0): both bit states are exercised against a steady scenario.
    """
    points: list[PointDict] = []
    address = 0
    for dtype in NUMERIC_DTYPES:
        scale, offset = COVERAGE_SCALING[dtype]
        for order in ORDERS:
            points.append({"key": f"{dtype}_{order.lower()}", "kind": "temperature", "register": "holding",
                           "address": address, "dtype": dtype, "order": order, "scale": scale,
                           "offset": offset})
            address += _WIDTH[dtype]
    word = address + 4  # a small hole the planner should read through
    for b in range(bit_count):
        points.append({"key": f"bit{b}", "kind": "status", "register": "holding", "address": word,
                       "dtype": "bool", "bit": (b * 5) % 16, "offset": -1.0 if b % 2 == 0 else 0.0})
    points.append({"key": "far_float64", "kind": "temperature", "register": "holding",
                   "address": far_address, "dtype": "float64", "order": "DCBA"})
    for i, (dtype, order) in enumerate((("float32", "CDAB"), ("int16", "ABCD"), ("uint32", "DCBA"))):
        scale, offset = COVERAGE_SCALING[dtype]
        points.append({"key": f"in_{dtype}_{order.lower()}", "kind": "temperature", "register": "input",
                       "address": 10 + 2 * i, "dtype": dtype, "order": order, "scale": scale,
                       "offset": offset})
    for table in ("coil", "discrete"):
        for i in range(bit_count):
            points.append({"key": f"{table}{i}", "kind": "status", "register": table, "address": 3 * i,
                           "offset": -1.0 if i % 2 == 0 else 0.0})
    return points


def modbus_device(
    enterprise: str,
    device: str,
    port: int,
    points: list[PointDict],
    *,
    host: str = "127.0.0.1",
    unit: int = 1,
    interval: float = 1.0,
    timeout: float = 0.5,
) -> dict[str, Any]:
    """A ``[[devices]]`` dict for a Modbus device with ``points``."""
    return {"enterprise": enterprise, "id": device, "protocol": "modbus", "host": host, "port": port,
            "unit": unit, "interval": interval, "timeout": timeout, "points": points}


def minimal_config(devices: list[dict[str, Any]], enterprises: tuple[str, ...] = ()) -> dict[str, Any]:
    """A whole config dict around ``devices``: one department, officer and grid, and their enterprises."""
    names = sorted({d["enterprise"] for d in devices} | set(enterprises))
    return {
        "departments": [{"id": "yjj", "name": "应急管理局"}],
        "officers": [{"id": "zhang", "name": "张伟"}],
        "grids": [{"id": "43090300100201", "name": "grid", "area": "430903001002", "officers": ["zhang"]}],
        "enterprises": [{"id": e, "name": e, "grid": "43090300100201", "lead_department": "yjj"}
                        for e in names],
        "devices": devices,
    }
