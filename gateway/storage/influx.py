"""The InfluxDB sink: readings as line protocol to ``/write`` (1.x) or the v2 write API, queries in InfluxQL.

Schema: one measurement per point kind, tags ``device``, ``enterprise``, ``grid``, ``point`` (in
that sorted order), fields ``value`` (float, written with ``repr`` so it round-trips) and
``quality`` (integer), timestamps in nanoseconds. The escaped ``measurement,tags value=`` prefix
of every sensor is computed once; a batch becomes lines with one f-string per reading. Non-finite
values are rejected before sending (``non_finite``). Connection errors, timeouts, 429 and 5xx
raise :class:`~gateway.errors.SinkUnavailable` (the caller keeps the batch and retries; a replay overwrites the
same points, so nothing is stored twice), as do 401/403/404 and any other unexpected status:
configuration problems never drop data. A 400/413/422 rejects only the offending lines: a 1.x
"partial write ... dropped=N" is counted as it stands, anything else is bisected until the lines
that fail alone are found. Queries go through InfluxQL ``/query`` for both APIs (1.x, 2.x with a
DBRP mapping, 3.x).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import numpy as np

from gateway.batch import Quality, ReadingBatch
from gateway.config import InfluxSection
from gateway.errors import SinkUnavailable, StoreError
from gateway.registry import Registry
from gateway.retry import parse_retry_after
from gateway.storage.sqlite_store import Agg, SeriesPoint, WriteResult

AGG_FUNCS: dict[str, str] = {"mean": "mean", "min": "min", "max": "max", "last": "last"}
DATA_ERROR_STATUS = frozenset({400, 413, 422})
RETRY_STATUS = frozenset({408, 429})

__all__ = ["InfluxSink", "SinkUnavailable", "escape_measurement", "escape_tag", "influxql_ident",
           "influxql_string", "line_protocol", "series_prefix", "series_query"]


# -- line protocol ------------------------------------------------------------------------------

_MEASUREMENT_ESC = str.maketrans({",": r"\,", " ": r"\ "})
_TAG_ESC = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})


def _check_escapable(text: str, what: str) -> None:
    # Line protocol has no escape for a backslash: "a\" followed by a delimiter reads as an escaped
    # delimiter, so a trailing backslash cannot be written (influxd 1.6.7: "invalid tag format").
    if not text:
        raise ValueError(f"{what} must not be empty in line protocol")
    if text.endswith("\\"):
        raise ValueError(f"{what} {text!r} ends with a backslash, which line protocol cannot express")
    if "\n" in text or "\r" in text:
        raise ValueError(f"{what} {text!r} contains a line break, which line protocol cannot express")


def escape_measurement(name: str) -> str:
    """A measurement name for line protocol: commas and spaces escaped; other backslashes stay literal."""
    _check_escapable(name, "measurement")
    return name.translate(_MEASUREMENT_ESC)


def escape_tag(text: str) -> str:
    """A tag key or value for line protocol: commas, equals signs and spaces escaped; UTF-8 unchanged."""
    _check_escapable(text, "tag")
    return text.translate(_TAG_ESC)


def series_prefix(measurement: str, tags: Mapping[str, str]) -> str:
    """``measurement,k=v,... value=``: the part of a line shared by every reading of one series."""
    tagset = "".join(f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()))
    return f"{escape_measurement(measurement)}{tagset} value="


def line_protocol(prefixes: Sequence[str], batch: ReadingBatch) -> list[str]:
    """One line per reading: ``prefix[sensor]`` + value (repr) + ``quality=<q>i`` + ns timestamp.

    Values must be finite (the caller filters NaN and infinities, which line protocol refuses).
    """
    return [
        f"{prefixes[s]}{v!r},quality={q}i {t}"
        for s, t, v, q in zip(batch.sensor.tolist(), batch.ts.tolist(), batch.value.tolist(),
                              batch.quality.tolist(), strict=True)
    ]


# -- InfluxQL -----------------------------------------------------------------------------------

def influxql_string(text: str) -> str:
    """A single-quoted InfluxQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def influxql_ident(name: str) -> str:
    """A double-quoted InfluxQL identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def series_query(measurement: str, tags: Mapping[str, str], start_ns: int, end_ns: int,
                 every_ns: int | None = None, agg: Agg = "mean", limit: int = 100_000) -> str:
    """InfluxQL for one series between two instants (inclusive), raw or aggregated per bucket.

    Aggregates skip fault readings (``quality < 2``); the quality of a bucket is the highest one in
    it (for ``last``: that of the last reading), as :meth:`gateway.storage.sqlite_store.SqliteStore.query` does.
    """
    where = " AND ".join(f"{influxql_ident(k)}={influxql_string(v)}" for k, v in tags.items())
    where += f" AND time >= {int(start_ns)}ns AND time <= {int(end_ns)}ns"
    source = influxql_ident(measurement)
    if every_ns is None:
        return f'SELECT "value","quality" FROM {source} WHERE {where} ORDER BY time ASC LIMIT {int(limit)}'
    if agg not in AGG_FUNCS:
        raise ValueError(f"unknown aggregate {agg!r}")
    quality = 'last("quality")' if agg == "last" else 'max("quality")'
    return (f'SELECT {AGG_FUNCS[agg]}("value"),{quality} FROM {source} WHERE {where}'
            f' AND "quality" < {int(Quality.FAULT)} GROUP BY time({int(every_ns)}ns) fill(none) LIMIT {int(limit)}')


def _json_minus_zero(text: str) -> int | float:
    # influxd writes -0.0 as "-0"; keep its sign (timestamps are never "-0").
    return -0.0 if text == "-0" else int(text)


# -- errors -------------------------------------------------------------------------------------

_PARTIAL = re.compile(r"partial write", re.IGNORECASE)
_DROPPED = re.compile(r"dropped=(\d+)")
_UNPARSABLE = re.compile(r"unable to parse", re.IGNORECASE)


def error_message(body: bytes | str | None) -> str:
    """InfluxDB's message from an error body (``{"error": ...}`` on 1.x, ``{"message": ...}`` on 2.x)."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        doc = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    if isinstance(doc, dict):
        return str(doc.get("error") or doc.get("message") or text).strip()[:500]
    return text.strip()[:500]


def reason_code(message: str) -> str:
    """A short counted code for a data error message."""
    low = message.lower()
    if "field type conflict" in low:
        return "field_type_conflict"
    if "unable to parse" in low:
        return "unparsable"
    if "beyond retention" in low:
        return "beyond_retention"
    if "max-values-per-tag" in low or "max-series-per-database" in low:
        return "limit_exceeded"
    return "rejected"


def _unavailable(status: int, message: str, retry_after: float | None, where: str) -> SinkUnavailable:
    if status in (401, 403):
        hint = "check [storage.influxdb] token (v1: user:password; v2: an API token)"
    elif status == 404:
        hint = "check [storage.influxdb] url, api and bucket (database not found?)"
    elif status in RETRY_STATUS or status >= 500:
        hint = "the server is busy or failing; will retry"
    else:
        hint = "unexpected answer; the data is kept"
    return SinkUnavailable(f"InfluxDB {where} answered {status}: {message or 'no message'} ({hint})", retry_after)


class _Rejects:
    """Rejected line counts per reason, folded into one WriteResult reason string."""

    def __init__(self) -> None:
        self.count = 0
        self.reasons: dict[str, int] = {}

    def add(self, n: int, reason: str) -> None:
        if n:
            self.count += n
            self.reasons[reason] = self.reasons.get(reason, 0) + n

    def text(self) -> str:
        return "; ".join(f"{reason} ({n})" for reason, n in self.reasons.items())


# -- the sink -----------------------------------------------------------------------------------

class InfluxSink:
    """Writes batches to InfluxDB and reads series back. Not reentrant: one write at a time."""

    name = "influxdb"

    def __init__(self, cfg: InfluxSection, registry: Registry, *, max_lines: int = 5000,
                 timeout: float = 10.0) -> None:
        if max_lines < 1:
            raise ValueError("max_lines must be at least 1")
        self.cfg = cfg
        self.registry = registry
        self.max_lines = max_lines
        self.timeout = timeout
        self.url = cfg.url.rstrip("/")
        db, _, rp = cfg.bucket.partition("/")
        self.db, self.rp = db, rp
        self._auth: tuple[str, str] | None = None
        self._headers: dict[str, str] = {}
        if cfg.api == "v1" and cfg.token:
            user, _, password = cfg.token.partition(":")
            self._auth = (user, password)
        elif cfg.api == "v2" and cfg.token:
            self._headers["Authorization"] = f"Token {cfg.token}"
        self._prefixes: list[str] = []
        self._build_prefixes()
        self._http: httpx.AsyncClient | None = None
        self._v2: Any = None  # InfluxDBClientAsync: it must be created inside the running loop
        self._v2_write: Any = None
        self.written = 0

    def _build_prefixes(self) -> None:
        self._prefixes = [
            series_prefix(s.kind, {"enterprise": s.enterprise, "device": s.device, "point": s.key, "grid": s.grid})
            for s in self.registry.sensors
        ]

    def _check_prefixes(self, batch: ReadingBatch) -> None:
        if len(batch) and int(batch.sensor.max()) >= len(self._prefixes):
            self._build_prefixes()  # the registry grew since the sink was made

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.timeout, auth=self._auth, headers=self._headers)
        return self._http

    # -- writes ---------------------------------------------------------------------------------

    def lines(self, batch: ReadingBatch) -> list[str]:
        """The batch as line protocol, one line per finite reading (NaN and infinities are left out)."""
        self._check_prefixes(batch)
        finite = np.isfinite(batch.value)
        return line_protocol(self._prefixes, batch if finite.all() else batch.take(finite))

    async def write(self, batch: ReadingBatch) -> WriteResult:
        """Write a batch in requests of at most ``max_lines`` lines; bad lines are rejected, the rest stored.

        Raises SinkUnavailable when a request could not be delivered; requests before it may have
        been stored, which a retry of the whole batch overwrites harmlessly.
        """
        if not len(batch):
            return WriteResult(0)
        self._check_prefixes(batch)
        rejects = _Rejects()
        finite = np.isfinite(batch.value)
        if not finite.all():
            rejects.add(int((~finite).sum()), "non_finite")
            batch = batch.take(finite)
        def build(start: int) -> list[str]:  # lines are built per request: bounded memory
            return line_protocol(self._prefixes, batch.take(slice(start, start + self.max_lines)))

        starts = list(range(0, len(batch), self.max_lines))
        accepted = 0
        lines = build(starts[0])
        for nxt in [*starts[1:], None]:
            # Build the next request's lines (in a worker thread) while InfluxDB takes this one.
            if nxt is None:
                accepted += await self._write_lines(lines, rejects)
                break
            done, lines = await asyncio.gather(self._write_lines(lines, rejects), asyncio.to_thread(build, nxt))
            accepted += done
        self.written += accepted
        return WriteResult(accepted, rejects.count, rejects.text())

    async def _write_lines(self, lines: list[str], rejects: _Rejects) -> int:
        """Send lines; returns how many were stored, adds the rest to ``rejects``."""
        status, message = await self._post("\n".join(lines).encode())
        if status < 300:
            return len(lines)
        if _PARTIAL.search(message):
            m = _DROPPED.search(message)
            # 1.x does not count unparsable lines in dropped=N: one "unable to parse" each.
            bad = min(len(lines), (int(m.group(1)) if m else 0) + len(_UNPARSABLE.findall(message)))
            if bad:
                rejects.add(bad, f"{reason_code(message)}: {message}")
                return len(lines) - bad
        if len(lines) == 1:
            rejects.add(1, f"{reason_code(message)}: {message}")
            return 0
        half = len(lines) // 2
        return await self._write_lines(lines[:half], rejects) + await self._write_lines(lines[half:], rejects)

    async def _post(self, body: bytes) -> tuple[int, str]:
        """POST one request body; (status, message) for success or a data error, else SinkUnavailable."""
        if self.cfg.api == "v2":
            return await self._post_v2(body)
        params = {"db": self.db, "precision": "ns"}
        if self.rp:
            params["rp"] = self.rp
        try:
            r = await self._client().post(f"{self.url}/write", params=params, content=body)
        except httpx.TimeoutException as exc:
            raise SinkUnavailable(f"InfluxDB /write timed out after {self.timeout} s: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise SinkUnavailable(f"InfluxDB {self.url} unreachable: {exc!r}") from exc
        return self._status(r.status_code, error_message(r.content), r.headers.get("Retry-After"), "/write")

    async def _post_v2(self, body: bytes) -> tuple[int, str]:
        import aiohttp
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        if self._v2_write is None:
            from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

            self._v2 = InfluxDBClientAsync(url=self.url, token=self.cfg.token or None, org=self.cfg.org or None,
                                           timeout=int(self.timeout * 1000))
            self._v2_write = self._v2.write_api()
        try:
            await self._v2_write.write(bucket=self.cfg.bucket, org=self.cfg.org or None, record=body,
                                       write_precision=WritePrecision.NS)
        except ApiException as exc:
            headers = exc.headers or {}
            return self._status(int(exc.status or 0), error_message(exc.body) or str(exc.reason or ""),
                                headers.get("Retry-After"), "/api/v2/write")
        except TimeoutError as exc:
            raise SinkUnavailable(f"InfluxDB /api/v2/write timed out after {self.timeout} s") from exc
        except aiohttp.ClientError as exc:
            raise SinkUnavailable(f"InfluxDB {self.url} unreachable: {exc!r}") from exc
        return 204, ""

    @staticmethod
    def _status(status: int, message: str, retry_after: str | None, where: str) -> tuple[int, str]:
        if status < 300 or status in DATA_ERROR_STATUS:
            return status, message
        raise _unavailable(status, message, parse_retry_after(retry_after), where)

    # -- reads ----------------------------------------------------------------------------------

    async def query(self, sensor_id: str, start_ns: int, end_ns: int, every_ns: int | None = None,
                    agg: Agg = "mean", limit: int = 100_000) -> list[SeriesPoint]:
        """A series between ``start_ns`` and ``end_ns`` (inclusive), raw or aggregated, ts in epoch ms."""
        s = self.registry.sensor(sensor_id)
        tags = {"enterprise": s.enterprise, "device": s.device, "point": s.key}
        q = series_query(s.kind, tags, start_ns, end_ns, every_ns, agg, limit)
        answer = await self._influxql(q)
        points: list[SeriesPoint] = []
        for result in answer.get("results", []):
            if "error" in result:
                raise StoreError(f"InfluxDB query of {sensor_id} failed: {result['error']}")
            if result.get("partial"):
                raise StoreError(f"InfluxDB truncated the answer for {sensor_id} (max-row-limit); narrow the range")
            for series in result.get("series", []):
                for ts, value, quality in series["values"]:
                    if value is not None:
                        points.append(SeriesPoint(int(ts) // 1_000_000, float(value), int(quality or 0)))
        return points

    async def _influxql(self, q: str) -> dict:
        params = {"db": self.db, "epoch": "ns"}
        if self.rp:
            params["rp"] = self.rp
        try:
            r = await self._client().post(f"{self.url}/query", params=params, data={"q": q})
        except httpx.TransportError as exc:
            raise SinkUnavailable(f"InfluxDB {self.url} unreachable for a query: {exc!r}") from exc
        if r.status_code != 200:
            message = error_message(r.content)
            if r.status_code in DATA_ERROR_STATUS:
                raise StoreError(f"InfluxDB refused the query ({r.status_code}): {message}")
            raise _unavailable(r.status_code, message, parse_retry_after(r.headers.get("Retry-After")), "/query")
        return json.loads(r.content, parse_int=_json_minus_zero)

    async def ping(self) -> bool:
        """Whether the server answers ``/ping`` with 204."""
        try:
            r = await self._client().get(f"{self.url}/ping")
        except httpx.TransportError:
            return False
        return r.status_code == 204

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._v2 is not None:
            await self._v2.close()
            self._v2 = self._v2_write = None
