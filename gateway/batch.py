"""The one value type that flows from collectors to sinks: a batch of readings as parallel arrays.

A batch is four numpy arrays of equal length: the registry's dense sensor index (int32), the
timestamp in epoch nanoseconds (int64), the value (float64) and a quality code (uint8). Collectors
decode straight into these arrays; the detector and the stores consume them whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class Quality(IntEnum):
    """Quality of one reading, as a collector or a device reports it."""

    GOOD = 0
    UNCERTAIN = 1  # e.g. a 4-20 mA loop saturated but still measuring
    FAULT = 2  # the device says the measurement is invalid; never a process value

    @classmethod
    def parse(cls, text: str) -> Quality:
        """Map a payload's quality word (``good``, ``uncertain``, ``bad``/``fault``) to a code."""
        try:
            return _QUALITY_WORDS[text.strip().lower()]
        except KeyError:
            raise ValueError(f"unknown quality {text!r}") from None


_QUALITY_WORDS = {
    "good": Quality.GOOD,
    "ok": Quality.GOOD,
    "uncertain": Quality.UNCERTAIN,
    "bad": Quality.FAULT,
    "fault": Quality.FAULT,
}

SENSOR_DTYPE = np.int32
TS_DTYPE = np.int64
VALUE_DTYPE = np.float64
QUALITY_DTYPE = np.uint8


@dataclass(frozen=True, slots=True)
class ReadingBatch:
    """Readings as parallel arrays: ``sensor[i]`` had ``value[i]`` at ``ts[i]`` (ns) with ``quality[i]``."""

    sensor: np.ndarray
    ts: np.ndarray
    value: np.ndarray
    quality: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.sensor)
        if not (len(self.ts) == len(self.value) == len(self.quality) == n):
            raise ValueError("ReadingBatch arrays must have equal lengths")

    def __len__(self) -> int:
        return len(self.sensor)

    @classmethod
    def empty(cls) -> ReadingBatch:
        return cls.of([], [], [], [])

    @classmethod
    def of(
        cls,
        sensor: Sequence[int] | np.ndarray,
        ts: Sequence[int] | np.ndarray,
        value: Sequence[float] | np.ndarray,
        quality: Sequence[int] | np.ndarray | None = None,
    ) -> ReadingBatch:
        """Build a batch from sequences, converting to the canonical dtypes."""
        s = np.asarray(sensor, dtype=SENSOR_DTYPE)
        q = (
            np.zeros(len(s), dtype=QUALITY_DTYPE)
            if quality is None
            else np.asarray(quality, dtype=QUALITY_DTYPE)
        )
        return cls(s, np.asarray(ts, dtype=TS_DTYPE), np.asarray(value, dtype=VALUE_DTYPE), q)

    def take(self, mask_or_index: np.ndarray) -> ReadingBatch:
        """The readings selected by a boolean mask or an index array."""
        return ReadingBatch(
            self.sensor[mask_or_index],
            self.ts[mask_or_index],
            self.value[mask_or_index],
            self.quality[mask_or_index],
        )

    @classmethod
    def concat(cls, batches: Sequence[ReadingBatch]) -> ReadingBatch:
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        return cls(
            np.concatenate([b.sensor for b in batches]),
            np.concatenate([b.ts for b in batches]),
            np.concatenate([b.value for b in batches]),
            np.concatenate([b.quality for b in batches]),
        )
