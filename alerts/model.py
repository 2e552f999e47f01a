"""Alarm and alarm-event values, as the book stores them and the API and notifiers send them.

States follow ISA-18.2; this first book uses four of the seven (normal, unacknowledged,
acknowledged, returned-to-normal-unacknowledged). The transition table lives here so that the code
and the docs share it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson

NORMAL = "normal"
UNACK = "unacknowledged"
ACKED = "acknowledged"
RTN_UNACK = "rtn_unacknowledged"
ACTIVE_STATES = (UNACK, ACKED, RTN_UNACK)

# (state, event) -> next state. "raise" and "rise" come from the detector, "clear" when the
# condition goes away, "ack" from an officer. Any pair not in the table is refused.
TRANSITIONS: dict[tuple[str, str], str] = {
    (NORMAL, "raise"): UNACK,
    (RTN_UNACK, "raise"): UNACK,
    (UNACK, "rise"): UNACK,
    (ACKED, "rise"): UNACK,  # re-alarm on a rise to a higher level
    (UNACK, "lower"): UNACK,
    (ACKED, "lower"): ACKED,
    (UNACK, "clear"): RTN_UNACK,
    (ACKED, "clear"): NORMAL,
    (UNACK, "ack"): ACKED,
    (RTN_UNACK, "ack"): NORMAL,
}
EVENT_TYPES = {"raise": "raised", "rise": "rose", "lower": "lowered", "clear": "cleared",
               "ack": "acknowledged"}

KINDS = ("process", "fault", "communication", "system")
PRIORITY = {"high_high": 1, "low_low": 1, "offline": 2, "stale": 2, "fault": 2, "high": 2, "low": 2}


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm: a condition of one sensor (or one device, for communication) from raise to normal."""

    id: int
    sensor_id: str
    enterprise: str
    device: str
    point: str | None
    grid: str
    kind: str
    level: str
    value: float | None
    peak: float | None
    unit: str
    state: str
    raised_at: int  # epoch ms
    updated_at: int
    cleared_at: int | None = None
    acked_at: int | None = None
    acked_by: str | None = None
    ack_note: str | None = None
    reason: str | None = None

    @property
    def active(self) -> bool:
        return self.state in (UNACK, ACKED)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One step in an alarm's life, with an id that increases across all alarms."""

    id: int
    type: str
    ts: int  # epoch ms
    alarm: Alarm
    actor: str | None = None
    note: str | None = None
    recipients: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "ts": self.ts,
            "actor": self.actor,
            "note": self.note,
            "recipients": list(self.recipients),
            "alarm": self.alarm.to_dict(),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())
