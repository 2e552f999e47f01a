"""Seeded, named scenarios: what a simulated sensor reads at a given time.

A scenario is a pure function of elapsed time, so a Modbus farm and an MQTT fleet playing the
same scenario with the same seed produce the same values, and a test can compute what the
gateway should have seen.

- ``steady``: noise around each kind's baseline.
- ``leak``: the combustible gas ramps from the baseline past both alarm levels, holds, and falls back.
- ``spike``: one short excursion over the high-high limit (shorter than a poll interval).
- ``fault``: the gas transmitter fails: the value leaves the measuring range and quality is fault.
- ``dropout``: the device stops answering for a while, then comes back.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Literal

from gateway.batch import Quality

ScenarioName = Literal["steady", "leak", "spike", "fault", "dropout"]
SCENARIOS: tuple[str, ...] = ("steady", "leak", "spike", "fault", "dropout")

# Baseline and noise amplitude per point kind.
BASELINES: dict[str, tuple[float, float]] = {
    "combustible_gas": (2.0, 0.5),
    "toxic_gas": (0.5, 0.2),
    "oxygen": (20.9, 0.05),
    "temperature": (25.0, 0.3),
    "pressure": (0.40, 0.005),
    "level": (50.0, 0.5),
    "flow": (10.0, 0.2),
    "vibration": (2.0, 0.2),
    "current": (12.0, 0.05),
    "status": (0.0, 0.0),
}
FAULT_VALUE = -25.0  # well below every measuring range: what a failed transmitter reads


def noise(seed: int, key: str, t: float, amplitude: float) -> float:
    """Deterministic noise in [-amplitude, amplitude] for (seed, key, t rounded to 1 ms)."""
    if amplitude == 0.0:
        return 0.0
    digest = hashlib.blake2b(f"{seed}|{key}|{round(t * 1000)}".encode(), digest_size=8).digest()
    u = struct.unpack("<Q", digest)[0] / 2**64
    return (2.0 * u - 1.0) * amplitude


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named scenario with its timing (seconds since the simulation started)."""

    name: str = "steady"
    seed: int = 1
    start: float = 5.0  # when the leak, spike, fault or dropout begins
    ramp: float = 20.0  # leak: seconds from baseline to peak (and back)
    hold: float = 10.0  # leak: seconds at peak; fault and dropout: how long they last
    peak: float = 70.0  # leak: %LEL at the top; spike: the spike's value
    spike_len: float = 0.4  # spike: shorter than a poll interval, so one sample at most
    targets: tuple[str, ...] = field(default=("combustible_gas",))  # kinds the event acts on

    def __post_init__(self) -> None:
        if self.name not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.name!r}; known: {', '.join(SCENARIOS)}")

    def answers(self, t: float) -> bool:
        """Whether the device answers at all at time ``t`` (false during a dropout)."""
        return not (self.name == "dropout" and self.start <= t < self.start + self.hold)

    def reading(self, kind: str, key: str, t: float) -> tuple[float, Quality]:
        """The value and quality a point of ``kind`` named ``key`` shows at time ``t``."""
        base, amp = BASELINES.get(kind, (0.0, 0.1))
        value = base + noise(self.seed, key, t, amp)
        if kind not in self.targets:
            return value, Quality.GOOD
        since = t - self.start
        if self.name == "leak" and since >= 0:
            value = max(value, self._leak_level(since, base))
        elif self.name == "spike" and 0 <= since < self.spike_len:
            value = self.peak
        elif self.name == "fault" and 0 <= since < self.hold:
            return FAULT_VALUE, Quality.FAULT
        return value, Quality.GOOD

    def _leak_level(self, since: float, base: float) -> float:
        if since < self.ramp:
            return base + (self.peak - base) * since / self.ramp
        if since < self.ramp + self.hold:
            return self.peak
        down = since - self.ramp - self.hold
        if down < self.ramp:
            return self.peak - (self.peak - base) * down / self.ramp
        return base

    @property
    def end(self) -> float:
        """When the scenario's event is over and the device reads its baseline again."""
        if self.name == "leak":
            return self.start + 2 * self.ramp + self.hold
        if self.name == "spike":
            return self.start + self.spike_len
        return self.start + self.hold
