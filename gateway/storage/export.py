"""``gridgate export``: one sensor's readings over a time range, as CSV or InfluxDB line protocol.

It reads the embedded SQLite store in the configuration's ``data_dir`` (WAL lets it read while a
gateway runs), streaming rows so that a long range does not sit in memory. CSV has a header
``time,ts_ns,value,quality`` with ISO 8601 UTC times; line protocol uses the same measurement, tags
and ns timestamps as the InfluxDB sink, so an export can be replayed into InfluxDB with ``/write``.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from gateway.batch import Quality
from gateway.config import Config
from gateway.errors import UnknownSensor
from gateway.register.service import registry_in_service
from gateway.storage import chunk_tables as tables
from gateway.storage.chunks import Readings, first_of_each
from gateway.storage.influx import series_prefix

DAY_NS = 86_400 * 10**9
QUALITY_WORDS = {int(q): q.name.lower() for q in Quality}


def parse_time_ns(text: str) -> int:
    """Epoch ns from ISO 8601 (with an offset) or epoch milliseconds."""
    text = text.strip()
    if text.isdigit():
        return int(text) * 1_000_000
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError(f"{text!r}: an ISO 8601 time needs an offset, e.g. +08:00 or Z")
    return int(dt.timestamp() * 1e6) * 1000


def rows(db: Path, sensor_id: str, start_ns: int, end_ns: int) -> Iterator[tuple[int, float, int]]:
    """(ts ns, value, quality) of one sensor, oldest first, straight from the store, a day at a time.

    A store that a gateway of the previous layout wrote (or whose upgrade was interrupted) is read
    as it is: the old one-row-per-reading table and the chunks together, without converting it.
    """
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        found = con.execute("SELECT sid FROM sensors WHERE sensor_id = ?", (sensor_id,)).fetchone()
        if found is None:
            raise UnknownSensor(f"no readings stored for {sensor_id!r}")
        sid = int(found[0])
        chunked = con.execute("SELECT 1 FROM sqlite_master WHERE name = 'layout'").fetchone() is not None
        width = tables.layout_width(con) if chunked else None
        legacy = tables.has_legacy(con)
        lo = start_ns
        while lo <= end_ns:
            hi = min(end_ns, lo + DAY_NS - 1)
            parts = [tables.legacy_series(con, sid, lo, hi)] if legacy else []
            if chunked:
                parts.append(tables.load_series(con, sid, lo, hi, width))
            r = first_of_each(Readings.concat(parts))
            yield from zip(r.ts.tolist(), r.value.tolist(), r.quality.tolist(), strict=True)
            lo = hi + 1
    finally:
        con.close()


def write_csv(out: TextIO, data: Iterator[tuple[int, float, int]]) -> int:
    out.write("time,ts_ns,value,quality\n")
    n = 0
    for ts, value, q in data:
        iso = datetime.fromtimestamp(ts / 1e9, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        out.write(f"{iso},{ts},{value!r},{QUALITY_WORDS.get(q, q)}\n")
        n += 1
    return n


def write_line_protocol(out: TextIO, prefix: str, data: Iterator[tuple[int, float, int]]) -> int:
    n = 0
    for ts, value, q in data:
        out.write(f"{prefix}{value!r},quality={q}i {ts}\n")
        n += 1
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, help="the gateway's configuration file (TOML)")
    p.add_argument("--sensor", required=True, metavar="ENT/DEV/POINT", help="the sensor: enterprise/device/point")
    p.add_argument("--start", default="0", help="ISO 8601 with an offset, or epoch ms (default: the beginning)")
    p.add_argument("--end", help="ISO 8601 with an offset, or epoch ms (default: now)")
    p.add_argument("--format", choices=("csv", "lp"), default="csv", help="csv or InfluxDB line protocol")
    p.add_argument("-o", "--output", help="write here instead of standard output")
    p.add_argument("--data-dir", help="override [gateway] data_dir (where readings.db is)")


def run(args: argparse.Namespace, cfg: Config) -> int:
    """``gridgate export`` with the configuration the command line loaded."""
    registry = registry_in_service(cfg, args.data_dir)  # sensors added through the API, retired ones too
    try:
        info = registry.any_sensor(args.sensor)
        start = parse_time_ns(args.start)
        end = parse_time_ns(args.end) if args.end else int(datetime.now(UTC).timestamp() * 1e9)
    except (UnknownSensor, ValueError) as exc:
        print(f"gridgate export: {exc}", file=sys.stderr)
        return 2
    db = Path(args.data_dir or cfg.gateway.data_dir) / "readings.db"
    if not db.exists():
        print(f"gridgate export: no store at {db}", file=sys.stderr)
        return 2
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        data = rows(db, info.sensor_id, start, end)
        if args.format == "csv":
            n = write_csv(out, data)
        else:
            tags = {"enterprise": info.enterprise, "device": info.device, "point": info.key, "grid": info.grid}
            n = write_line_protocol(out, series_prefix(info.kind, tags), data)
    except UnknownSensor as exc:
        print(f"gridgate export: {exc}", file=sys.stderr)
        return 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"exported {n} readings of {info.sensor_id}", file=sys.stderr)
    return 0
