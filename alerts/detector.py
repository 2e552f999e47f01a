"""The detector: per-sensor alarm state in numpy arrays, a whole batch evaluated at once, no I/O.

For each sensor index the detector holds its limits (low-low, low, high, high-high; NaN where
unset), deadband, on- and off-delay, measuring range and status bit mask, and its state: the
committed alarm level (-2 low-low … 0 normal … 2 high-high), the level pending behind a delay and
since when, whether it is in fault, its last value and time. ``evaluate`` takes a ReadingBatch and
returns the level changes as a :class:`Transitions` of arrays; what to do with them (the alarm
book, notifications) happens elsewhere.

A reading of fault quality, or outside the sensor's measuring range, never counts as a process
value: it raises a fault condition and leaves the process level (and the rate) as it was. For a
4-20 mA loop point the fault commits only once faulty readings have lasted 4 s (NAMUR NE 43); a good
reading cancels it. Staleness is tracked per device (``stale_after``) from the readings seen.

Rate of change: for a point with ``rate_of_change`` (units per minute) the rate is the *rise* of the
value over the last ``rate_window`` seconds, per minute: ``(value - lowest value in the window) * 60
/ rate_window``. Only rises count: a falling gas concentration is recovery, and a falling oxygen
level is the low limit's business. The window is kept per rate sensor as the minimum of each of
``RATE_BUCKETS`` equal time buckets, so it reaches back between one window and one window plus a
bucket; memory and work per reading are fixed however dense the readings are. The alarm is on while
the rate exceeds the limit, behind the point's on- and off-delay.

While an alarm is active its peak follows the readings: the highest value of a high or high-high
alarm, the lowest of a low or low-low one, the highest rate of a rate alarm. The rounds of a batch
mark the sensors whose alarm is active; :meth:`Detector.take_extremes` hands them over once per
batch (:class:`Extremes`: one entry per such sensor and condition, its latest good value and its
peak), so the book updates one row per alarm per batch, never one per reading.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateway.batch import Quality, ReadingBatch
from gateway.ingest.intake import RangeCheck
from gateway.registry import Registry

PROCESS = 0
FAULT = 1
RATE = 2
LOOP_FAULT_DELAY = 4_000_000_000  # ns: a loop failure counts as a fault once it lasts 4 s (NAMUR NE 43)
RATE_BUCKETS = 32  # a rate window is kept as this many bucket minimums (plus the current bucket)
LEVEL_NAMES = {-2: "low_low", -1: "low", 1: "high", 2: "high_high"}


@dataclass(frozen=True, slots=True)
class Transitions:
    """Committed changes: ``sensor[i]`` went from ``old[i]`` to ``new[i]`` at ``ts[i]``.

    ``condition`` is PROCESS (levels -2..2), FAULT (0 = no fault, 1 = fault) or RATE (0 = rate
    within its limit, 1 = rising faster). ``value`` is the reading that committed the change;
    ``peak`` is, for PROCESS, the most severe value since the alarm rose, for FAULT the reading, and
    for RATE the rate (units per minute) at the commit.
    """

    sensor: np.ndarray
    ts: np.ndarray
    condition: np.ndarray
    old: np.ndarray
    new: np.ndarray
    value: np.ndarray
    peak: np.ndarray

    def __len__(self) -> int:
        return len(self.sensor)

    @classmethod
    def concat(cls, parts: list[Transitions]) -> Transitions:
        if not parts:
            e = np.empty(0)
            return cls(e.astype(np.int32), e.astype(np.int64), e.astype(np.int8), e.astype(np.int8),
                       e.astype(np.int8), e, e)
        if len(parts) == 1:
            return parts[0]
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__slots__))


@dataclass(frozen=True, slots=True)
class Extremes:
    """Active alarms that had readings in a batch: ``sensor[i]``'s ``condition[i]`` (PROCESS or RATE)
    has ``value[i]`` as its latest good reading and ``peak[i]`` as its most extreme value (a rate, for
    RATE) since the alarm became active."""

    sensor: np.ndarray
    condition: np.ndarray
    value: np.ndarray
    peak: np.ndarray

    def __len__(self) -> int:
        return len(self.sensor)


def _limit_array(registry: Registry, key: str) -> np.ndarray:
    return np.array([s.point.effective_limits().get(key, np.nan) for s in registry.sensors], dtype=np.float64)


class Detector:
    """Threshold, deadband, delay and fault evaluation for every sensor of a registry."""

    def __init__(self, registry: Registry) -> None:
        sensors = registry.sensors
        n = len(sensors)
        self.low_low = _limit_array(registry, "low_low")
        self.low = _limit_array(registry, "low")
        self.high = _limit_array(registry, "high")
        self.high_high = _limit_array(registry, "high_high")
        self.deadband = np.array([s.point.deadband for s in sensors], dtype=np.float64)
        self.on_delay = np.array([int(s.point.on_delay * 1e9) for s in sensors], dtype=np.int64)
        self.off_delay = np.array([int(s.point.off_delay * 1e9) for s in sensors], dtype=np.int64)
        ranges = RangeCheck.from_registry(registry)  # the intake's ranges: it marks what lies outside as FAULT
        self.range_low, self.range_high = ranges.low, ranges.high
        self.mask = np.array([s.point.alarm_mask or 0 for s in sensors], dtype=np.int64)
        self.device_of = np.array([s.device_index for s in sensors], dtype=np.int32)
        self.level = np.zeros(n, dtype=np.int8)
        self.pending = np.zeros(n, dtype=np.int8)
        self.pending_since = np.zeros(n, dtype=np.int64)
        self.fault = np.zeros(n, dtype=bool)
        self.fault_delay = np.array(
            [LOOP_FAULT_DELAY if s.point.signal == "4-20mA" else 0 for s in sensors], dtype=np.int64
        )
        self.fault_pending = np.zeros(n, dtype=bool)
        self.fault_since = np.zeros(n, dtype=np.int64)
        self.peak = np.full(n, np.nan)
        self.good_value = np.full(n, np.nan)  # the latest good reading of a sensor in alarm
        self.live = np.zeros(n, dtype=bool)  # in alarm, with a good reading since take_extremes
        self._any_live = False
        self.last_value = np.full(n, np.nan)
        self.last_ts = np.zeros(n, dtype=np.int64)
        self.last_quality = np.zeros(n, dtype=np.uint8)
        devices = registry.devices
        self.stale_after = np.array(  # a retired device is never stale: nothing is expected of it
            [0 if d.retired else int((d.config.stale_after or 0) * 1e9) for d in devices], dtype=np.int64
        )
        # readings of a retired sensor (still in flight when it was retired) are stored, not evaluated
        self.retired = np.array([s.retired for s in sensors], dtype=bool)
        self._any_retired = bool(self.retired.any())
        self.device_last_seen = np.zeros(len(devices), dtype=np.int64)
        self.device_stale = np.zeros(len(devices), dtype=bool)
        self.evaluated = 0
        self.out_of_order = 0
        self._init_rate(registry)

    def _init_rate(self, registry: Registry) -> None:
        points = [s.point for s in registry.sensors]
        self.has_rate = np.array([p.rate_of_change is not None for p in points], dtype=bool)
        self.rate_limit = np.array([p.rate_of_change or np.nan for p in points], dtype=np.float64)
        self.rate_window = np.array([int(p.rate_window * 1e9) for p in points], dtype=np.int64)
        self.rate_bucket = np.maximum(self.rate_window // RATE_BUCKETS, 1)
        self.rate_row = np.full(len(points), -1, dtype=np.int32)  # row of a rate sensor in the ring
        rows = int(np.count_nonzero(self.has_rate))
        self.rate_row[self.has_rate] = np.arange(rows, dtype=np.int32)
        self.ring_min = np.full((rows, RATE_BUCKETS + 1), np.inf)
        self.ring_id = np.full((rows, RATE_BUCKETS + 1), np.iinfo(np.int64).min, dtype=np.int64)
        self.rate = np.zeros(len(points))  # the latest rate, units per minute
        self.rate_on = np.zeros(len(points), dtype=bool)
        self.rate_peak = np.full(len(points), np.nan)  # the highest rate while the rate alarm is on
        self.rate_pending = np.zeros(len(points), dtype=bool)
        self.rate_since = np.zeros(len(points), dtype=np.int64)

    def evaluate(self, batch: ReadingBatch) -> Transitions:
        """Evaluate a batch; readings of one sensor are taken in the order they appear."""
        if self._any_retired:
            batch = batch.take(~self.retired[batch.sensor])
        if len(batch) == 0:
            return Transitions.concat([])
        sensor = batch.sensor
        counts = np.bincount(sensor, minlength=1)
        if counts.max() <= 1:
            return self._step(sensor, batch.ts, batch.value, batch.quality)
        quiet = self._quiet(sensor, batch.value, batch.quality)
        parts = []
        if quiet.any():
            self._settle_quiet(sensor, batch.ts, batch.value, batch.quality, quiet)
        if not quiet.all():
            loud = batch.take(~quiet)
            parts = self._rounds(loud.sensor, loud.ts, loud.value, loud.quality)
        return Transitions.concat(parts)

    def _quiet(self, s: np.ndarray, v: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Readings of sensors that are normal, not pending, and read normal in every reading of the batch.

        Such readings cannot change any state but the last value, so they skip the round-by-round
        evaluation; this is the common case and keeps a batch to a fixed number of numpy calls.
        A rate sensor is never quiet: every reading of it moves its window. Nor is a sensor whose
        loop fault is pending: a good reading cancels it.
        """
        calm = (self.level[s] == 0) & (self.pending[s] == 0) & ~self.fault[s] & (q != Quality.FAULT)
        calm &= ~self.has_rate[s] & ~self.fault_pending[s]
        calm &= ~((v < self.range_low[s]) | (v > self.range_high[s]) | ~np.isfinite(v))
        mask = self.mask[s]
        ev = np.where(mask != 0, ((np.nan_to_num(v).astype(np.int64) & mask) != 0).astype(np.float64), v)
        calm &= ~((ev >= self.high[s]) | (ev >= self.high_high[s]) | (ev <= self.low[s]) | (ev <= self.low_low[s]))
        if calm.all():
            return calm
        loud = np.zeros(len(self.level), dtype=bool)
        loud[s[~calm]] = True
        return ~loud[s]

    def _settle_quiet(self, s: np.ndarray, ts: np.ndarray, v: np.ndarray, q: np.ndarray,
                      quiet: np.ndarray) -> None:
        s, ts, v, q = s[quiet], ts[quiet], v[quiet], q[quiet]
        fresh = ts >= self.last_ts[s]
        self.out_of_order += int(len(s) - np.count_nonzero(fresh))
        s, ts, v, q = s[fresh], ts[fresh], v[fresh], q[fresh]
        self.evaluated += len(s)
        order = np.lexsort((ts, s))  # by sensor, then time: the last of each group is the newest
        so = s[order]
        last = order[np.r_[so[1:] != so[:-1], True]] if len(so) else order
        self.last_value[s[last]] = v[last]
        self.last_ts[s[last]] = ts[last]
        self.last_quality[s[last]] = q[last]
        np.maximum.at(self.device_last_seen, self.device_of[s[last]], ts[last])

    def _rounds(self, sensor: np.ndarray, ts: np.ndarray, value: np.ndarray, quality: np.ndarray
                ) -> list[Transitions]:
        """Several readings of one sensor: the k-th reading of each sensor is evaluated in round k."""
        order = np.argsort(sensor, kind="stable")
        s_sorted = sensor[order]
        starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
        rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        parts = []
        for r in range(int(rank.max()) + 1):
            idx = order[rank == r]
            parts.append(self._step(sensor[idx], ts[idx], value[idx], quality[idx]))
        return parts

    def _step(self, s: np.ndarray, ts: np.ndarray, v: np.ndarray, q: np.ndarray) -> Transitions:
        """One round: every sensor index appears at most once in ``s``."""
        fresh = ts >= self.last_ts[s]
        self.out_of_order += int(len(s) - np.count_nonzero(fresh))
        if not fresh.all():
            s, ts, v, q = s[fresh], ts[fresh], v[fresh], q[fresh]
        self.evaluated += len(s)
        dev = self.device_of[s]
        np.maximum.at(self.device_last_seen, dev, ts)

        lo, hi = self.range_low[s], self.range_high[s]
        faulty = (q == Quality.FAULT) | (v < lo) | (v > hi) | ~np.isfinite(v)
        parts = [self._fault_changes(s, ts, v, faulty)]

        good = ~faulty
        gs, gts, gv = s[good], ts[good], v[good]
        mask = self.mask[gs]
        ev = np.where(mask != 0, ((gv.astype(np.int64) & mask) != 0).astype(np.float64), gv)
        parts.append(self._level_changes(gs, gts, ev, gv))
        if self.has_rate[gs].any():
            parts.append(self._rate_changes(gs, gts, gv))
        live = (self.level[gs] != 0) | self.rate_on[gs]
        if live.any():
            self.good_value[gs[live]] = gv[live]
            self.live[gs[live]] = True
            self._any_live = True

        self.last_value[s] = v
        self.last_ts[s] = ts
        self.last_quality[s] = np.where(faulty, Quality.FAULT, q)
        return Transitions.concat([p for p in parts if len(p)])

    def _fault_changes(self, s: np.ndarray, ts: np.ndarray, v: np.ndarray, faulty: np.ndarray) -> Transitions:
        """Faults commit once faulty readings have lasted ``fault_delay`` (0: at once); they clear at once."""
        was = self.fault[s]
        since = np.where(faulty & ~was & ~self.fault_pending[s], ts, self.fault_since[s])
        now = faulty & (was | (ts - since >= self.fault_delay[s]))
        self.fault_pending[s] = faulty & ~now
        self.fault_since[s] = since
        self.fault[s] = now
        c = np.flatnonzero(was != now)
        return Transitions(
            s[c], ts[c], np.full(len(c), FAULT, np.int8), was[c].astype(np.int8),
            now[c].astype(np.int8), v[c], v[c],
        )

    def _rate_of(self, s: np.ndarray, ts: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Put each reading into its sensor's window; return the rise over the window, per minute."""
        row = self.rate_row[s]
        bucket = ts // self.rate_bucket[s]
        slot = bucket % (RATE_BUCKETS + 1)
        same = self.ring_id[row, slot] == bucket
        self.ring_min[row, slot] = np.where(same, np.minimum(self.ring_min[row, slot], v), v)
        self.ring_id[row, slot] = bucket
        inside = self.ring_id[row] >= (bucket - RATE_BUCKETS)[:, None]
        lowest = np.where(inside, self.ring_min[row], np.inf).min(axis=1)
        return (v - lowest) * 60e9 / self.rate_window[s]  # >= 0: the reading itself is in the window

    def _rate_changes(self, s: np.ndarray, ts: np.ndarray, v: np.ndarray) -> Transitions:
        """Good readings only (a faulty reading is no process value); ``s`` unique, as in a round."""
        r = np.flatnonzero(self.has_rate[s])
        s, ts, v = s[r], ts[r], v[r]
        rate = self._rate_of(s, ts, v)
        self.rate[s] = rate
        cur = self.rate_on[s]
        target = rate > self.rate_limit[s]
        changed = target != cur
        since = np.where(changed & ~self.rate_pending[s], ts, self.rate_since[s])
        commit = changed & (ts - since >= np.where(target, self.on_delay[s], self.off_delay[s]))
        self.rate_pending[s] = changed & ~commit
        self.rate_since[s] = since
        c = np.flatnonzero(commit)
        self.rate_on[s[c]] = target[c]
        self.rate_peak[s] = np.where(self.rate_on[s], np.fmax(self.rate_peak[s], rate), np.nan)
        return Transitions(s[c], ts[c], np.full(len(c), RATE, np.int8), cur[c].astype(np.int8),
                           target[c].astype(np.int8), v[c], rate[c])

    def _level_changes(self, s: np.ndarray, ts: np.ndarray, ev: np.ndarray, v: np.ndarray) -> Transitions:
        cur = self.level[s]
        db = self.deadband[s]
        hh, h, lw, ll = self.high_high[s], self.high[s], self.low[s], self.low_low[s]
        hi_raw = np.where(ev >= hh, 2, np.where(ev >= h, 1, 0))
        hi_hold = np.where(ev >= hh - db, 2, np.where(ev >= h - db, 1, 0))
        new_hi = np.maximum(hi_raw, np.minimum(np.maximum(cur, 0), hi_hold))
        lo_raw = np.where(ev <= ll, 2, np.where(ev <= lw, 1, 0))
        lo_hold = np.where(ev <= ll + db, 2, np.where(ev <= lw + db, 1, 0))
        new_lo = np.maximum(lo_raw, np.minimum(np.maximum(-cur, 0), lo_hold))
        target = np.where(new_hi > 0, new_hi, -new_lo).astype(np.int8)

        changed = target != cur
        restart = changed & (self.pending[s] != target)
        since = np.where(restart, ts, self.pending_since[s])
        worse = (np.abs(target) > np.abs(cur)) | (np.sign(target) * np.sign(cur) < 0)
        delay = np.where(worse, self.on_delay[s], self.off_delay[s])
        commit = changed & (ts - since >= delay)
        self.pending[s] = np.where(changed, target, cur)
        self.pending_since[s] = since

        active = cur != 0
        peak = self.peak[s]
        more = np.where(cur > 0, v > peak, v < peak) | np.isnan(peak)
        self.peak[s] = np.where(active & more, v, peak)

        c = np.flatnonzero(commit)
        if len(c) == 0:
            return Transitions.concat([])
        cs, new, was = s[c], target[c], cur[c]
        self.level[cs] = new
        flipped = np.sign(new) * np.sign(was) < 0
        old_peak = self.peak[cs]
        out_peak = np.where(np.isnan(old_peak) | flipped, v[c], old_peak)
        self.peak[cs] = np.where(new == 0, np.nan, out_peak)
        return Transitions(cs, ts[c], np.zeros(len(c), np.int8), was, new, v[c], out_peak)

    # What a detector learns from readings, per sensor and per device; the rest is configuration.
    SENSOR_STATE = ("level", "pending", "pending_since", "fault", "fault_pending", "fault_since", "peak",
                    "good_value", "live", "last_value", "last_ts", "last_quality", "rate", "rate_on",
                    "rate_peak", "rate_pending", "rate_since")
    DEVICE_STATE = ("device_last_seen", "device_stale")

    def reconfigure(self, registry: Registry) -> None:
        """Take the registry's limits and settings as they are now, keeping what every sensor still in
        service has learnt (its alarm state, its last reading, its rate window); a new sensor starts
        as at a start, a retired one is forgotten. Call it between evaluations."""
        fresh = Detector(registry)
        keep = np.array([not s.retired for s in registry.sensors], dtype=bool)
        n = min(len(self.level), len(fresh.level))
        kept = np.flatnonzero(keep[:n])
        for name in self.SENSOR_STATE:
            getattr(fresh, name)[kept] = getattr(self, name)[kept]
        m = min(len(self.device_last_seen), len(fresh.device_last_seen))
        live_devices = np.flatnonzero([not d.retired for d in registry.devices[:m]])
        for name in self.DEVICE_STATE:
            getattr(fresh, name)[live_devices] = getattr(self, name)[live_devices]
        # the rate window goes on where it still applies (same window)
        both = kept[self.has_rate[kept] & fresh.has_rate[kept] & (self.rate_window[kept] == fresh.rate_window[kept])]
        fresh.ring_min[fresh.rate_row[both]] = self.ring_min[self.rate_row[both]]
        fresh.ring_id[fresh.rate_row[both]] = self.ring_id[self.rate_row[both]]
        fresh.evaluated, fresh.out_of_order = self.evaluated, self.out_of_order
        fresh._any_live = bool(fresh.live.any())
        self.__dict__.update(fresh.__dict__)

    def restore(self, sensor: int, condition: int, level: int, peak: float | None = None) -> None:
        """Start from a condition the alarm book still has open (after a restart): a reading that
        ends it then makes the clear, instead of the alarm staying active for ever."""
        if condition == FAULT:
            self.fault[sensor] = True
        elif condition == RATE:
            self.rate_on[sensor] = True
            self.rate_peak[sensor] = np.nan if peak is None else peak
        else:
            self.level[sensor] = level
            self.pending[sensor] = level
            self.peak[sensor] = np.nan if peak is None else peak

    def take_extremes(self) -> Extremes:
        """The active alarms that had good readings since the last call, with their latest value and
        peak now (a sensor whose alarm ended meanwhile is left out: its clear carried its value)."""
        if not self._any_live:
            e = np.empty(0)
            return Extremes(e.astype(np.int32), e.astype(np.int8), e, e)
        s = np.flatnonzero(self.live).astype(np.int32)
        self.live[s] = False
        self._any_live = False
        proc, rate = s[self.level[s] != 0], s[self.rate_on[s]]
        sensor = np.concatenate([proc, rate])
        condition = np.r_[np.full(len(proc), PROCESS, np.int8), np.full(len(rate), RATE, np.int8)]
        peak = np.concatenate([self.peak[proc], self.rate_peak[rate]])
        return Extremes(sensor, condition, self.good_value[sensor], peak)

    def check_stale(self, now_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """Devices that went stale since the last check, and those that came back."""
        watched = self.stale_after > 0
        seen = self.device_last_seen > 0
        stale = watched & seen & (now_ns - self.device_last_seen > self.stale_after)
        went = np.flatnonzero(stale & ~self.device_stale)
        back = np.flatnonzero(~stale & self.device_stale)
        self.device_stale = stale
        return went, back
