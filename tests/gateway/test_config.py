"""Configuration: every refusal names its key path; `gridgate check` prints them all."""

from __future__ import annotations

import copy
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.config import load_config, parse_config
from gateway.errors import ConfigError
from gateway.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "gridgate.example.toml"
GAS = "devices[0] (hengyuan-chem/gas-ctrl-1)"  # the example's first device, as a key path names it


def example() -> dict:
    return tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))


def problems_of(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    return exc.value.problems


def gridgate_check(path: Path) -> subprocess.CompletedProcess[str]:
    """``gridgate check -c path``, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "gateway.root.cli", "check", "-c", str(path)],
                          capture_output=True, text=True, cwd=ROOT)


def test_example_loads_and_registers() -> None:
    cfg = load_config(EXAMPLE)
    reg = Registry(cfg)
    assert [s.sensor_id for s in reg.sensors][:2] == ["hengyuan-chem/gas-ctrl-1/ch4", "hengyuan-chem/gas-ctrl-1/h2s"]
    assert reg.sensor_index("hengyuan-chem/tank-farm/t1") == 6
    flow = reg.sensor("hengyuan-chem/gas-ctrl-1/feed_flow").point
    assert (flow.signal, flow.suppressed_by, flow.effective_range()) == ("4-20mA", "pump_running", (0.0, 50.0))
    assert cfg.officers[0].duty == ["mon-fri 08:00-18:00"] and cfg.alarms.flood.alarms == 10
    assert reg.officers_of("hengyuan-chem") == ["zhang"]
    h2s = reg.sensor("hengyuan-chem/gas-ctrl-1/h2s").point.effective_limits()
    assert h2s["high"] == pytest.approx(10 * 24.45 / 34.08)  # 10 mg/m³ of H2S in ppm


def edit(path: list, value: object, delete: bool = False) -> dict:
    data = copy.deepcopy(example())
    node = data
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


CASES = [
    ("unknown key", ["devices", 0, "points", 0, "hihg"], 3.0, f"{GAS}.points[0] (ch4).hihg",
     "unknown key 'hihg' (did you mean 'high'?)"),
    ("unknown section key", ["gateway", "dataa_dir"], "x", "gateway.dataa_dir",
     "unknown key 'dataa_dir' (did you mean 'data_dir'?)"),
    ("grid does not exist", ["enterprises", 0, "grid"], "99", "enterprises[0] (hengyuan-chem).grid",
     "grid '99' does not exist"),
    ("department does not exist", ["enterprises", 0, "lead_department"], "nope",
     "enterprises[0] (hengyuan-chem).lead_department", "does not exist"),
    ("limits out of order", ["devices", 0, "points", 0, "high_high"], 15.0, f"{GAS}.points[0] (ch4)",
     "limits out of order"),
    ("combustible looser than the standard", ["devices", 0, "points", 0, "high"], 30.0,
     f"{GAS}.points[0] (ch4)", "looser than GB/T 50493-2019"),
    ("oxygen deficiency looser", ["devices", 0, "points", 2, "low"], 18.0, f"{GAS}.points[2] (o2)",
     "at least 19.5"),
    ("h2s looser", ["devices", 0, "points", 1, "high"], 50.0, f"{GAS}.points[1] (h2s)", "looser"),
    ("dtype does not fit count", ["devices", 0, "points", 0, "count"], 1, f"{GAS}.points[0] (ch4)",
     "takes 2 register(s)"),
    ("coil with float32", ["devices", 0, "points", 2, "register"], "coil", f"{GAS}.points[2] (o2)",
     "dtype must be bool"),
    ("timeout not below interval", ["devices", 0, "timeout"], 1.0, f"{GAS}", "must be below interval"),
    ("bad byte order", ["devices", 0, "points", 0, "order"], "ABDC", f"{GAS}.points[0] (ch4).order", ""),
    ("grid officer unknown", ["grids", 0, "officers"], ["ghost"], "grids[0] (43090300100201).officers[0]",
     "does not exist"),
    ("bad id", ["enterprises", 0, "id"], "has space", "enterprises[0] (has space).id", "pattern"),
]


@pytest.mark.parametrize("name,path,value,where,msg", CASES, ids=[c[0] for c in CASES])
def test_refusals(name: str, path: list, value: object, where: str, msg: str) -> None:
    problems = problems_of(edit(path, value))
    assert any(p == where and msg in m for p, m in problems), problems


def test_duplicates_and_reserved() -> None:
    data = example()
    data["officers"].append(dict(data["officers"][0]))
    data["enterprises"].append({**data["enterprises"][0], "id": "alarms"})
    data["devices"].append(copy.deepcopy(data["devices"][1]))
    got = problems_of(data)
    assert ("officers[3] (zhang).id", "duplicate id 'zhang'") in got
    assert ("enterprises[1] (alarms).id", "'alarms' is reserved (MQTT alarm topics)") in got
    assert ("devices[2] (hengyuan-chem/tank-farm).id", "duplicate device hengyuan-chem/tank-farm") in got


def test_point_on_device_of_another_enterprise() -> None:
    data = example()
    data["enterprises"].append({"id": "other", "name": "Other", "grid": "43090300100301",
                                "lead_department": "yjj"})
    data["points"] = [{"enterprise": "other", "device": "gas-ctrl-1", "key": "co", "kind": "toxic_gas",
                       "gas": "co", "unit": "ppm", "register": "holding", "address": 20, "dtype": "uint16"}]
    assert ("points[0] (other/gas-ctrl-1/co).device",
            "device 'gas-ctrl-1' belongs to enterprise hengyuan-chem, not 'other'") in problems_of(data)
    data["points"][0]["enterprise"] = "hengyuan-chem"
    reg = Registry(parse_config(data))
    assert "hengyuan-chem/gas-ctrl-1/co" in [s.sensor_id for s in reg.sensors]


def test_modbus_point_needs_register() -> None:
    data = example()
    del data["devices"][0]["points"][0]["register"]
    del data["devices"][0]["points"][0]["address"]
    del data["devices"][0]["points"][0]["dtype"]
    assert any("needs register" in m for _, m in problems_of(data))


def test_cli_check_prints_every_problem(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    bad = text.replace('grid = "43090300100201"', 'grid = "nowhere"').replace("high = 20.0", "high = 30.0")
    bad = bad.replace('[mqtt]\n', '[mqtt]\nurll = "x"\n')
    f = tmp_path / "bad.toml"
    f.write_text(bad, encoding="utf-8")
    out = gridgate_check(f)
    assert out.returncode == 1
    assert "mqtt.urll: unknown key 'urll' (did you mean 'url'?)" in out.stdout
    assert f"{GAS}.points[0] (ch4): high = 30 is looser" in out.stdout
    ok = gridgate_check(EXAMPLE)
    assert ok.returncode == 0 and "7 sensors" in ok.stdout


def test_cli_hash_password_verifies() -> None:
    from argon2 import PasswordHasher

    out = subprocess.run([sys.executable, "-m", "gateway.root.cli", "hash-password"], input="s3cret\n",
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0
    assert PasswordHasher().verify(out.stdout.strip(), "s3cret")
    empty = subprocess.run([sys.executable, "-m", "gateway.root.cli", "hash-password"], input="\n",
                           capture_output=True, text=True, cwd=ROOT)
    assert empty.returncode == 1


def test_equal_point_tables_share_their_points_and_unequal_ones_do_not() -> None:
    data = example()
    first = data["devices"][0]
    twins = [dict(first, id=f"twin-{k}", unit=2 + k) for k in range(3)]  # devices of one model
    data["devices"] += twins
    odd = copy.deepcopy(first["points"])
    odd[1]["high"] = 5.0  # one limit differs
    data["devices"].append(dict(first, id="odd", unit=9, points=odd))
    cfg = parse_config(data)
    by_id = {d.id: d for d in cfg.devices}
    for k in range(3):
        assert all(a is b for a, b in zip(by_id[first["id"]].points, by_id[f"twin-{k}"].points, strict=True))
    odd_points = by_id["odd"].points
    assert odd_points[0] is by_id[first["id"]].points[0]
    assert odd_points[1] is not by_id[first["id"]].points[1] and odd_points[1].high == 5.0
    # sharing is per parse: another configuration never gets this one's points
    assert parse_config(example()).devices[0].points[0] is not by_id[first["id"]].points[0]


def test_a_shared_point_never_hides_a_bad_one() -> None:
    data = example()
    first = data["devices"][0]
    bad = copy.deepcopy(first["points"])
    bad[0]["deadband"] = -1.0  # refused, however many equal good tables came before it
    data["devices"] += [dict(first, id="twin", unit=2), dict(first, id="bad", unit=3, points=bad)]
    assert [where for where, _ in problems_of(data)] == ["devices[3] (hengyuan-chem/bad).points[0] (ch4).deadband"]
    from gateway.config import _frozen

    # equal in Python but not alike to validate: never taken for one another
    assert _frozen({"address": 1}) != _frozen({"address": 1.0}) != _frozen({"address": True})
    assert _frozen({"a": [1, {"b": 2}]}) == _frozen({"a": [1, {"b": 2}]})


def test_a_large_configuration_is_parsed_in_a_child_with_the_same_result(tmp_path: Path) -> None:
    from gateway.root.loading import FORK_ABOVE

    text = EXAMPLE.read_text(encoding="utf-8")
    big = tmp_path / "big.toml"
    big.write_text(text + "\n" + ("#" * 79 + "\n") * (FORK_ABOVE // 80 + 1), encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(big.read_text(encoding="utf-8").replace('grid = "43090300100201"', 'grid = "nowhere"'),
                   encoding="utf-8")
    # in a process of its own: the loader forks only where no other thread runs
    probe = (
        "import os, sys\n"
        "from gateway.root.loading import load_compact\n"
        "from gateway.config import load_config\n"
        "from gateway.errors import ConfigError\n"
        "pid = os.getpid()\n"
        "forks = []\n"
        "real_fork = os.fork\n"
        "os.fork = lambda: forks.append(1) or real_fork()\n"
        "assert load_compact(sys.argv[1]) == load_config(sys.argv[1]) and forks == [1]\n"
        "try:\n"
        "    load_compact(sys.argv[2])\n"
        "except ConfigError as exc:\n"
        "    try:\n"
        "        load_config(sys.argv[2])\n"
        "    except ConfigError as same:\n"
        "        assert exc.problems == same.problems and exc.problems, exc.problems\n"
        "        print('problems', len(exc.problems), len(forks), os.getpid() == pid)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(big), str(bad)], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "problems" and out.stdout.split()[2:] == ["2", "True"]
