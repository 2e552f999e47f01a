"""Issue 11 item 7: ``gridgate check`` reports everything at once, names items by id, refuses a float
where an integer is meant, suggests the key a typo was meant to be, and never blames a default."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from gateway.config import Config, check_item, parse_config
from gateway.config.document import LISTS, SECTIONS
from tests.gateway.test_config import EXAMPLE, GAS, example, gridgate_check, problems_of


def test_every_key_of_the_file_has_its_model() -> None:
    assert set(SECTIONS) | set(LISTS) == set(Config.model_fields)


def test_a_key_typo_does_not_hide_a_missing_grid_or_a_bad_point() -> None:
    data = example()
    data["mqtt"]["urll"] = "x"
    data["enterprises"][0]["grid"] = "nowhere"
    data["devices"][0]["points"][1]["unti"] = "ppm"  # a typo in one point ...
    data["devices"][0]["points"][3]["suppressed_by"] = "ghost"  # ... hides nothing about the others
    data["users"][1]["officer"] = "nobody"
    assert problems_of(data) == [  # in the order of the file
        ("mqtt.urll", "unknown key 'urll' (did you mean 'url'?)"),
        ("users[1] (zhang).officer", "officer 'nobody' does not exist"),
        ("enterprises[0] (hengyuan-chem).grid", "grid 'nowhere' does not exist"),
        (f"{GAS}.points[1] (h2s).unti", "unknown key 'unti' (did you mean 'unit'?)"),
        (f"{GAS}.points[3] (run_status).suppressed_by",
         "suppressed_by must name another status point of hengyuan-chem/gas-ctrl-1, not 'ghost'"),
    ]


def test_an_item_with_a_wrong_key_still_defines_its_id() -> None:
    data = example()
    data["grids"][0]["nmae"] = "typo"  # the grid is wrong, but it exists: its enterprise is not blamed
    assert problems_of(data) == [("grids[0] (43090300100201).nmae", "unknown key 'nmae' (did you mean 'name'?)")]


def test_items_are_named_by_id_even_when_another_field_is_wrong() -> None:
    data = example()
    data["grids"][1]["officers"] = ["ghost"]
    data["users"][1]["role"] = "boss"
    data["devices"][0]["points"][1]["high"] = "high"
    data["devices"][1]["points"][0]["kind"] = "heat"
    data["notifiers"][0]["grids"] = ["nowhere"]
    got = problems_of(data)
    assert ("grids[1] (43090300100301).officers[0]", "officer 'ghost' does not exist") in got
    assert any(p == "users[1] (zhang).role" for p, _ in got)
    assert (f"{GAS}.points[1] (h2s).high", "a number is meant here, not 'high'") in got
    assert any(p == "devices[1] (hengyuan-chem/tank-farm).points[0] (t1).kind" for p, _ in got)
    assert ("notifiers[0] (town-dingtalk).grids[0]", "grid 'nowhere' does not exist") in got


@pytest.mark.parametrize("path,value,where,msg", [
    (["devices", 0, "unit"], 1.0, f"{GAS}.unit", "an integer is meant here: write 1, not 1.0"),
    (["devices", 0, "unit"], True, f"{GAS}.unit", "an integer is meant here, not true"),
    (["devices", 0, "points", 0, "address"], 0.0, f"{GAS}.points[0] (ch4).address", "write 0, not 0.0"),
    (["api", "access_ttl"], 900.0, "api.access_ttl", "write 900, not 900.0"),
    (["alarms", "flood", "alarms"], "10", "alarms.flood.alarms", "an integer is meant here, not '10'"),
    (["devices", 0, "points", 0, "high"], True, f"{GAS}.points[0] (ch4).high", "a number is meant here, not true"),
])
def test_a_float_or_a_bool_is_refused_where_an_integer_is_meant(path: list, value: object, where: str,
                                                                msg: str) -> None:
    data = example()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert any(p == where and msg in m for p, m in problems_of(data)), problems_of(data)


def test_a_number_still_takes_an_integer() -> None:
    data = example()
    data["devices"][0]["points"][0]["high"] = 20
    data["devices"][0]["interval"] = 2
    cfg = parse_config(data)
    assert cfg.devices[0].points[0].high == 20.0 and isinstance(cfg.devices[0].points[0].high, float)


@pytest.mark.parametrize("where,key,said", [
    (["mqtt"], "urll", "unknown key 'urll' (did you mean 'url'?)"),
    (["storage", "influxdb"], "bucekt", "unknown key 'bucekt' (did you mean 'bucket'?)"),
    (["devices", 0, "points", 0], "registr", "unknown key 'registr' (did you mean 'register'?)"),
    (["devices", 0], "intervall", "unknown key 'intervall' (did you mean 'interval'?)"),
    (["api"], "token_tl", "unknown key 'token_tl'"),  # never suggests the refused token_ttl
    ([], "device", "unknown key 'device' (did you mean 'devices'?)"),
    (["mqtt"], "zzz", "unknown key 'zzz'"),
])
def test_an_unknown_key_says_which_one_was_meant(where: list, key: str, said: str) -> None:
    data = example()
    node = data
    for part in where:
        node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    node[key] = 1
    assert [m for _, m in problems_of(data)] == [said]


@pytest.mark.parametrize("path,value,said", [
    (["devices", 0, "interval"], 0.4,
     "timeout (0.5, the default) must be below interval (0.4)"),
    (["devices", 0, "points", 0, "range_low"], 100.0,
     "range_low (100) must be below range_high (100, the default for combustible_gas)"),
    (["devices", 0, "points", 1, "high_high"], 5.0,
     "limits out of order: high (7.1743, the default for toxic_gas) must be below high_high (5)"),
    (["mqtt", "ca_file"], "/etc/ca.crt",
     "ca_file need an mqtts:// url, not url ('mqtt://127.0.0.1:1883')"),
    (["api", "access_ttl"], 86400,
     "refresh_ttl must be longer than access_ttl: refresh_ttl (43200, the default), access_ttl (86400)"),
])
def test_a_default_is_named_as_a_default(path: list, value: object, said: str) -> None:
    data = example()
    node = data
    for key in path[:-1]:
        node = node[key]
    if path[-1] == "interval":
        del node["timeout"]
    node[path[-1]] = value
    assert said in [m for _, m in problems_of(data)], problems_of(data)


def test_a_default_url_is_named_as_the_default() -> None:
    data = example()
    del data["mqtt"]["url"]
    data["mqtt"]["ca_file"] = "/etc/ca.crt"
    assert problems_of(data) == [("mqtt", "ca_file need an mqtts:// url, not url ('mqtt://127.0.0.1:1883', "
                                          "the default)")]


def test_a_toxic_gas_without_unit_says_it_is_not_set() -> None:
    data = example()
    del data["devices"][0]["points"][1]["unit"]
    assert (f"{GAS}.points[1] (h2s)", "toxic gas h2s needs unit ppm or mg/m³, unit is not set") in problems_of(data)


def test_check_item_validates_one_device_against_a_configuration() -> None:
    cfg = parse_config(example())
    device = copy.deepcopy(example()["devices"][0])
    device["id"] = "gas-ctrl-2"
    device["unit"] = 2
    assert check_item(cfg, "devices", device) == []
    device["enterprise"] = "nowhere"
    device["points"][1]["hihg"] = 5.0
    device["points"][3]["suppressed_by"] = "ch4"
    assert check_item(cfg, "devices", device) == [
        ("devices[2] (nowhere/gas-ctrl-2).enterprise", "enterprise 'nowhere' does not exist"),
        ("devices[2] (nowhere/gas-ctrl-2).points[1] (h2s).hihg", "unknown key 'hihg' (did you mean 'high'?)"),
        ("devices[2] (nowhere/gas-ctrl-2).points[3] (run_status).suppressed_by",
         "suppressed_by must name another status point of nowhere/gas-ctrl-2, not 'ch4'"),
    ]
    same = copy.deepcopy(example()["devices"][1])
    assert check_item(cfg, "devices", same) == [("devices[2] (hengyuan-chem/tank-farm).id",
                                                 "duplicate device hengyuan-chem/tank-farm")]
    assert check_item(cfg, "devices", same, index=1) == []  # in its own place it is itself


def test_check_item_for_other_lists() -> None:
    cfg = parse_config(example())
    assert check_item(cfg, "grids", {"id": "g3", "name": "G", "area": "4309", "officers": ["ghost"]}) == [
        ("grids[2] (g3).officers[0]", "officer 'ghost' does not exist")]
    assert check_item(cfg, "users", {"username": "zhang", "password_hash": "x", "role": "admin"})[0][0] \
        == "users[2] (zhang)"
    enterprise = {**example()["enterprises"][0], "id": "new", "grid": "nowhere"}
    assert check_item(cfg, "enterprises", enterprise) == [("enterprises[1] (new).grid",
                                                           "grid 'nowhere' does not exist")]
    with pytest.raises(ValueError):
        check_item(cfg, "mqtt", {})


def test_cli_check_prints_a_key_typo_and_a_missing_grid(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    bad = text.replace('[mqtt]\n', '[mqtt]\nurll = "x"\n').replace('grid = "43090300100201"', 'grid = "nowhere"')
    bad = bad.replace("unit = 1\n", "unit = 1.0\n")
    f = tmp_path / "bad.toml"
    f.write_text(bad, encoding="utf-8")
    out = gridgate_check(f)
    assert out.returncode == 1
    assert out.stdout.splitlines() == [
        f"{f}: mqtt.urll: unknown key 'urll' (did you mean 'url'?)",
        f"{f}: enterprises[0] (hengyuan-chem).grid: grid 'nowhere' does not exist",
        f"{f}: {GAS}.unit: an integer is meant here: write 1, not 1.0",
    ]
    assert "3 problem(s) found" in out.stderr
