"""`gridgate export`: a sensor's range as CSV and as line protocol that InfluxDB takes back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from gateway.batch import Quality, ReadingBatch
from gateway.registry import Registry
from gateway.storage.sqlite_store import SqliteStore
from tests.influx_peer import InfluxD

ROOT = Path(__file__).resolve().parents[2]
S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z


def example_store(tmp_path: Path) -> tuple[Path, Registry, SqliteStore]:
    """The example configuration with its data in ``tmp_path/data``, its registry and an empty store."""
    from gateway.config import load_config

    cfg = tmp_path / "gridgate.toml"
    text = (ROOT / "gridgate.example.toml").read_text(encoding="utf-8")
    cfg.write_text(text.replace('data_dir = "data"', f'data_dir = "{tmp_path / "data"}"'), encoding="utf-8")
    reg = Registry(load_config(cfg))
    (tmp_path / "data").mkdir()
    return cfg, reg, SqliteStore(tmp_path / "data" / "readings.db", reg)


def make_store(tmp_path: Path) -> Path:
    cfg, reg, store = example_store(tmp_path)
    idx = reg.sensor_index("hengyuan-chem/gas-ctrl-1/ch4")
    other = reg.sensor_index("hengyuan-chem/tank-farm/t1")
    q = [Quality.GOOD] * 9 + [Quality.FAULT]
    store.write(ReadingBatch.of([idx] * 10 + [other], list(T0 + np.arange(10) * S) + [T0],
                                [0.1 * i for i in range(10)] + [99.0], q + [Quality.GOOD]))
    store.close()
    return cfg


def export(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.root.cli", "export", "-c", str(cfg), *args],
                          capture_output=True, text=True, cwd=ROOT)


def test_export_csv_range(tmp_path: Path) -> None:
    cfg = make_store(tmp_path)
    out = export(cfg, "--sensor", "hengyuan-chem/gas-ctrl-1/ch4", "--start", "2026-01-01T00:00:02Z",
                 "--end", str((T0 + 8 * S) // 1_000_000))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "time,ts_ns,value,quality"
    assert lines[1] == f"2026-01-01T00:00:02.000Z,{T0 + 2 * S},0.2,good"
    assert len(lines) == 1 + 7  # seconds 2..8 inclusive, and only this sensor
    assert "exported 7 readings" in out.stderr
    bad = export(cfg, "--sensor", "hengyuan-chem/nope/x")
    assert bad.returncode == 2 and "unknown sensor" in bad.stderr


def test_export_line_protocol_replays_into_influxdb(tmp_path: Path, influxd: InfluxD) -> None:
    cfg = make_store(tmp_path)
    target = tmp_path / "ch4.lp"
    out = export(cfg, "--sensor", "hengyuan-chem/gas-ctrl-1/ch4", "--format", "lp", "-o", str(target))
    assert out.returncode == 0, out.stderr
    lines = target.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ("combustible_gas,device=gas-ctrl-1,enterprise=hengyuan-chem,grid=43090300100201,"
                        f"point=ch4 value=0.0,quality=0i {T0}")
    assert lines[-1].endswith(f"quality=2i {T0 + 9 * S}")
    influxd.create_database("replay")
    assert influxd.write("replay", "\n".join(lines)).status_code == 204
    assert influxd.count("replay", "combustible_gas") == 10


def test_export_a_sensor_the_api_added_and_then_retired(tmp_path: Path) -> None:
    """The export reads the registry in service (registry.db), not only the file's."""
    import asyncio

    from gateway.config import load_config
    from gateway.register import edit
    from gateway.register.service import open_service

    cfg = make_store(tmp_path)
    service, reg, _ = open_service(tmp_path / "data", load_config(cfg))
    new = {"enterprise": "hengyuan-chem", "id": "kiln", "protocol": "mqtt",
           "points": [{"key": "t", "kind": "temperature", "unit": "°C"}]}
    asyncio.run(service.change(lambda items, r: edit.put(items, "devices", "hengyuan-chem/kiln", new, r["devices"]),
                               "admin"))
    store = SqliteStore(tmp_path / "data" / "readings.db", reg)
    store.write(ReadingBatch.of([reg.sensor_index("hengyuan-chem/kiln/t")], [T0], [812.5]))
    store.close()
    asyncio.run(service.change(lambda items, r: edit.retire(items, "devices", "hengyuan-chem/kiln"), "admin"))
    service.store.close()
    out = export(cfg, "--sensor", "hengyuan-chem/kiln/t", "--start", "0")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:] == ["2026-01-01T00:00:00.000Z,1767225600000000000,812.5,good"]
