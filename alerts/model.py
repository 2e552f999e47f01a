"""Alarm and alarm-event values, and the two tables an alarm's life follows.

``TRANSITIONS`` is the ISA-18.2 (IEC 62682) alarm-state table, seven states. ``CASES`` is the case
table of grid supervision (report → dispatch → handle → report back → verify → close). The code
applies exactly these tables (:mod:`alerts.book`), the exhaustive test walks every pair, and the
README prints them: any (state, event) pair that is not in a table is refused with an error.

Condition events come from the detector (``raise``, ``rise``, ``lower``, ``clear``), operator
actions from the API (``ack``, ``shelve``, ``unshelve``), maintenance (``remove`` takes a device's
alarms out of service, ``restore`` returns them) and design logic (``suppress``, ``unsuppress``).
Where a table says ``BY_CONDITION`` the next state is ``unacknowledged`` when the alarm's condition
is active and ``normal`` when it is not: how shelving, suppression and out-of-service end.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson

NORMAL = "normal"
UNACK = "unacknowledged"
ACKED = "acknowledged"
RTN_UNACK = "rtn_unacknowledged"
SHELVED = "shelved"
SUPPRESSED = "suppressed"
OUT_OF_SERVICE = "out_of_service"
STATES = (NORMAL, UNACK, ACKED, RTN_UNACK, SHELVED, SUPPRESSED, OUT_OF_SERVICE)
ACTIVE_STATES = (UNACK, ACKED, RTN_UNACK)  # what an officer has to look at
HIDDEN_STATES = (SHELVED, SUPPRESSED, OUT_OF_SERVICE)  # recorded, not pushed to anyone
BY_CONDITION = "by_condition"

CONDITION_EVENTS = ("raise", "rise", "lower", "clear")
EVENTS = (*CONDITION_EVENTS, "ack", "shelve", "unshelve", "suppress", "unsuppress", "remove", "restore")

_HIDE = {"shelve": SHELVED, "suppress": SUPPRESSED, "remove": OUT_OF_SERVICE}

# (state, event) -> next state. Any pair not in the table is refused.
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
    # any of the four visible states can be shelved, suppressed or taken out of service
    **{(s, e): hidden for s in (NORMAL, UNACK, ACKED, RTN_UNACK) for e, hidden in _HIDE.items()},
    # hidden: the condition is followed (and recorded) without a state change
    **{(s, e): s for s in HIDDEN_STATES for e in CONDITION_EVENTS},
    (SHELVED, "unshelve"): BY_CONDITION,
    (SHELVED, "suppress"): SUPPRESSED,  # logic and maintenance outrank an operator's shelf
    (SHELVED, "remove"): OUT_OF_SERVICE,
    (SUPPRESSED, "unsuppress"): BY_CONDITION,
    (SUPPRESSED, "remove"): OUT_OF_SERVICE,
    (OUT_OF_SERVICE, "restore"): BY_CONDITION,
}

# Case handling, beside the alarm state. ``close`` also needs the alarm state to be normal (the
# condition gone and acknowledged): the officer verifies before closing.
CASE_OPEN = "open"
DISPATCHED = "dispatched"
RESOLVED = "resolved"
CLOSED = "closed"
CASE_STATES = (CASE_OPEN, DISPATCHED, RESOLVED, CLOSED)
CASE_ACTIONS = ("dispatch", "resolve", "close")
CASES: dict[tuple[str, str], str] = {
    (CASE_OPEN, "dispatch"): DISPATCHED,  # to the lead or a cooperating department, with a note
    (DISPATCHED, "dispatch"): DISPATCHED,  # handed on to another department
    (RESOLVED, "dispatch"): DISPATCHED,  # the officer did not accept the report: back to a department
    (DISPATCHED, "resolve"): RESOLVED,  # the department reports back
    (CASE_OPEN, "resolve"): RESOLVED,  # the officer handled it on the spot
    (CASE_OPEN, "close"): CLOSED,
    (RESOLVED, "close"): CLOSED,
}

EVENT_TYPES = {"raise": "raised", "rise": "rose", "lower": "lowered", "clear": "cleared",
               "ack": "acknowledged", "shelve": "shelved", "unshelve": "unshelved",
               "suppress": "suppressed", "unsuppress": "unsuppressed", "remove": "out_of_service",
               "restore": "returned_to_service", "dispatch": "dispatched", "resolve": "resolved",
               "close": "closed", "moved": "moved"}

KINDS = ("process", "fault", "communication", "system", "report")
PRIORITY = {"high_high": 1, "low_low": 1, "rate_of_change": 2, "offline": 2, "stale": 2, "fault": 2, "read_error": 2,
            "high": 2, "low": 2, "report": 2, "data_loss": 1, "flood": 2, "store_failing": 2}
PRIORITY_NAMES = {1: "high", 2: "medium", 3: "low"}


def next_state(state: str, event: str, condition: bool) -> str | None:
    """The state after ``event`` in ``state`` (None: refused); ``condition`` resolves BY_CONDITION."""
    nxt = TRANSITIONS.get((state, event))
    if nxt == BY_CONDITION:
        return UNACK if condition else NORMAL
    return nxt


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm: a condition of one sensor (or one device, a grid, a report) until its case closes."""

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
    in_alarm: bool = True  # the condition is active now (whatever the state shows)
    case: str = CASE_OPEN
    department: str | None = None  # dispatched to
    shelved_until: int | None = None
    closed_at: int | None = None
    closed_by: str | None = None
    linked_to: int | None = None  # the closed alarm of the same condition this one follows
    chattering: bool = False
    unacked_since: int | None = None  # when it last became unacknowledged: the escalation clock
    escalations: int = 0  # escalation steps since then

    @property
    def active(self) -> bool:
        return self.state in (UNACK, ACKED)

    @property
    def priority(self) -> str:
        return PRIORITY_NAMES[PRIORITY.get(self.level, 3)]

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

    @property
    def pushed(self) -> bool:
        """Whether notifiers push it: not the condition changes of a shelved, suppressed or
        out-of-service alarm (the history and the live stream still have them)."""
        return not (self.alarm.state in HIDDEN_STATES and self.type in ("raised", "rose", "lowered", "cleared"))

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
