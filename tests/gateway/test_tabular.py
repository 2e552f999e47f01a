"""The towns' registers (CSV and .xlsx) as registry items: headers in Chinese or English, cell types,
every problem with its row and column, device grouping, locating validation problems, round trips."""

from __future__ import annotations

import io
from typing import Any, get_args

import pytest
from openpyxl import Workbook

from gateway.config import parse_config
from gateway.config.points import PointKind
from gateway.errors import ConfigError, GridgateError
from gateway.register.columns import COLUMNS, KINDS, LOOKUP, normal
from gateway.register.tabular import Table, TableError, locate, read_table, write_table

DEVICE_HEADER = ["企业编号", "设备编号", "协议", "IP地址", "端口", "从站地址", "采集周期(s)", "测点编号", "测点类型",
                 "计量单位", "寄存器类型", "寄存器地址", "数据类型", "一级报警", "二级报警"]
DEPARTMENTS = {"应急管理局": "yjj", "消防救援大队": "fire"}


def csv_of(rows: list[list[Any]], encoding: str = "utf-8") -> bytes:
    return "\n".join(",".join(f'"{c}"' if "," in str(c) else str(c) for c in row) for row in rows).encode(encoding)


def xlsx_of(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def problems(data: bytes, filename: str, **kw: Any) -> list[str]:
    with pytest.raises(TableError) as exc:
        read_table(data, filename, **kw)
    assert isinstance(exc.value, GridgateError)
    return exc.value.problems


def device_row(ent: str = "hengyuan-chem", dev: str = "gas-1", port: Any = 502, point: str = "lel",
               address: Any = 0) -> list[Any]:
    return [ent, dev, "modbus", "10.0.0.5", port, 1, 1, point, "可燃气体", "%LEL", "holding", address, "float32",
            20, 40]


# ---------------------------------------------------------------- grids


def test_grids_register_in_gbk_with_chinese_headers_makes_officer_ids() -> None:
    rows = [["网格编码", "网格名称", "所属区划代码", "网格员", "联系电话（手机）"],
            ["g-01", "东关村", "3201150010", "张伟、李娜", "13800000001；13800000002"],
            ["", "", "", "", ""],
            ["g-02", " 西关村 ", 3201150011, "王芳 赵强", ",13800000004"]]
    data = csv_of(rows, "gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # really GBK
    table = read_table(data, "网格.csv")
    assert table.kind == "grids"
    assert table.items["grids"] == [
        {"id": "g-01", "name": "东关村", "area": "3201150010", "officers": ["g-01-o1", "g-01-o2"]},
        {"id": "g-02", "name": "西关村", "area": "3201150011", "officers": ["g-02-o1", "g-02-o2"]},
    ]
    assert table.items["officers"] == [
        {"id": "g-01-o1", "name": "张伟", "phone": "13800000001"},
        {"id": "g-01-o2", "name": "李娜", "phone": "13800000002"},
        {"id": "g-02-o1", "name": "王芳"},  # the empty entry: no phone
        {"id": "g-02-o2", "name": "赵强", "phone": "13800000004"},
    ]
    assert table.origin[("grids", 1)].row == 4  # the blank row 3 is skipped, not renumbered
    assert table.origin[("officers", 3)].columns == {"name": "网格员", "phone": "联系电话（手机）"}


def test_grids_register_in_english_with_officer_ids_shared_by_two_grids() -> None:
    rows = [["id", "Name", "AREA", "officers", "officer_names", "phones", "responsible", "contact"],
            ["g-01", "East", "32", "o-1, o-2", "Zhang Wei, Li Na", "13800000001, 13800000002", "o-9", "Li Na"],
            ["g-02", "West", "33", "o-1", "Zhang Wei", "13800000001", "", ""]]
    table = read_table(csv_of(rows), "grids.csv")
    assert table.items["grids"][0] == {"id": "g-01", "name": "East", "area": "32", "officers": ["o-1", "o-2"],
                                       "responsible": "o-9", "contact": "o-2"}  # a name of the row: its id
    assert table.items["officers"] == [{"id": "o-1", "name": "Zhang Wei", "phone": "13800000001"},
                                       {"id": "o-2", "name": "Li Na", "phone": "13800000002"}]
    assert table.items["grids"][1]["officers"] == ["o-1"]


def test_one_officer_two_names_names_both_rows_and_counts_must_match() -> None:
    rows = [["网格编码", "网格名称", "区划代码", "网格员编号", "网格员", "联系电话"],
            ["g-01", "东关村", "32", "o-1", "张伟", "13800000001"],
            ["g-02", "西关村", "32", "o-1", "张维", "13800000001"],
            ["g-03", "南关村", "32", "o-3,o-4", "王芳", ""],
            ["g-04", "北关村", "32", "o-5", "赵强", "1,2"]]
    assert problems(csv_of(rows), "g.csv") == [
        "row 3: officer 'o-1' is '张维' '13800000001' here but '张伟' '13800000001' on row 2",
        "row 4, column 网格员 (officer_names): 1 names for 2 officers",
        "row 5, column 联系电话 (phones): 2 phones for 1 officers",
    ]


# ---------------------------------------------------------------- enterprises


def test_enterprises_resolve_department_names_and_take_the_credit_code_as_id() -> None:
    rows = [["*企业名称", "统一社会信用代码", "网格编码", "行业主管部门", "配合部门", "行业类别", "企业地址", "联系人",
             "联系电话"],
            ["恒源化工", "91320115mA1xyz0001", "g-01", "应急管理局", "消防救援大队、scj", "危险化学品", "东关路1号",
             "刘洋", 13900000001]]
    table = read_table(xlsx_of(rows), "企业.xlsx", departments=DEPARTMENTS)
    assert table.items == {"enterprises": [{
        "id": "91320115ma1xyz0001", "name": "恒源化工", "credit_code": "91320115MA1XYZ0001", "grid": "g-01",
        "lead_department": "yjj", "cooperating_departments": ["fire", "scj"], "risk_class": "危险化学品",
        "address": "东关路1号", "contact": "刘洋", "phone": "13900000001"}]}
    assert table.origin[("enterprises", 0)].columns["id"] == "统一社会信用代码"
    rows = [["企业编号", "企业名称", "统一社会信用代码"], ["e-1", "甲", ""], ["", "乙", "91320115MA1XYZ0002"]]
    table = read_table(csv_of(rows), "e.csv")
    assert [e["id"] for e in table.items["enterprises"]] == ["e-1", "91320115ma1xyz0002"]
    assert locate([("enterprises[0] (91320115ma1xyz0002).id", "duplicate id")], table, {("enterprises", 0): 1}) \
        == ["row 3, column 统一社会信用代码 (credit_code): duplicate id"]
    assert problems(csv_of([["企业名称", "企业编号", "统一社会信用代码"], ["x", "", ""]]), "e.csv") == [
        "row 2: needs 企业编号 (id) or 统一社会信用代码 (credit_code)"]


def test_five_thousand_enterprises() -> None:
    rows = [["企业编号", "企业名称", "所属网格", "牵头部门"]]
    rows += [[f"ent-{i}", f"企业{i}", f"g-{i % 40}", "应急管理局"] for i in range(5000)]
    table = read_table(csv_of(rows), "big.csv", departments=DEPARTMENTS)
    assert len(table.items["enterprises"]) == 5000
    assert table.items["enterprises"][4999] == {"id": "ent-4999", "name": "企业4999", "grid": "g-39",
                                                "lead_department": "yjj"}
    assert table.origin[("enterprises", 4999)].row == 5001


# ---------------------------------------------------------------- devices and cell types


def test_xlsx_devices_register_from_openpyxl_has_the_configuration_types() -> None:
    rows = [["企业编号", "设备编号", "协议", "主机", "端口", "从站地址", "采集周期（秒）", "超时", "测点编号",
             "测点类型", "气体", "计量单位", "寄存器类型", "寄存器地址", "数据类型", "高报", "高高报"],
            ["hengyuan-chem", "gas-1", "Modbus", "10.0.0.5", 502.0, 1, 1, 0.5, "lel", "可燃气体", None, "%LEL",
             "保持寄存器", 0.0, "FLOAT32", 20, 40],
            [None] * 17,
            ["hengyuan-chem", "gas-1", None, None, None, None, None, None, "h2s", "有毒气体", "硫化氢", "ppm",
             "holding", 2, "float32", 5, 10.5]]
    table = read_table(xlsx_of(rows), "设备.xlsx")
    [device] = table.items["devices"]
    assert device == {"enterprise": "hengyuan-chem", "id": "gas-1", "protocol": "modbus", "host": "10.0.0.5",
                      "port": 502, "unit": 1, "interval": 1.0, "timeout": 0.5, "points": [
                          {"key": "lel", "kind": "combustible_gas", "unit": "%LEL", "register": "holding",
                           "address": 0, "dtype": "float32", "high": 20.0, "high_high": 40.0},
                          {"key": "h2s", "kind": "toxic_gas", "gas": "h2s", "unit": "ppm", "register": "holding",
                           "address": 2, "dtype": "float32", "high": 5.0, "high_high": 10.5}]}
    assert [type(device[k]) for k in ("port", "unit", "interval")] == [int, int, float]
    assert [type(v) for v in device["points"][0].values() if not isinstance(v, str)] == [int, float, float]
    assert table.origin[("devices", 0)].points[1].row == 4
    config = {"departments": [{"id": "yjj", "name": "应急管理局"}], "officers": [{"id": "o-1", "name": "张伟"}],
              "grids": [{"id": "g-01", "name": "东关村", "area": "32", "officers": ["o-1"]}],
              "enterprises": [{"id": "hengyuan-chem", "name": "恒源化工", "grid": "g-01", "lead_department": "yjj"}],
              "devices": table.items["devices"]}
    assert parse_config(config).devices[0].points[1].high == 5.0  # validates as it is: no 1.0 for an int


@pytest.mark.parametrize("column,cell,filename,value", [
    ("从站地址", "1", "csv", 1), ("从站地址", "1.0", "csv", 1), ("从站地址", 1.0, "xlsx", 1),
    ("端口", 502.0, "xlsx", 502), ("端口", " 502 ", "csv", 502), ("端口", "/dev/ttyUSB0", "csv", "/dev/ttyUSB0"),
    ("采集周期(s)", "1", "csv", 1.0), ("采集周期(s)", 2, "xlsx", 2.0), ("寄存器地址", "0x10", "csv", 16),
])
def test_cells_take_the_type_the_configuration_wants(column: str, cell: Any, filename: str, value: Any) -> None:
    row = device_row()
    row[DEVICE_HEADER.index(column)] = cell
    data = csv_of([DEVICE_HEADER, row]) if filename == "csv" else xlsx_of([DEVICE_HEADER, row])
    device = read_table(data, f"d.{filename}").items["devices"][0]
    got = device["points"][0]["address"] if column == "寄存器地址" else \
        device[{"从站地址": "unit", "端口": "port", "采集周期(s)": "interval"}[column]]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("column,cell,filename,message", [
    ("端口", "50a", "csv", "row 2, column 端口 (port): '50a' is not a whole number"),
    ("端口", 502.5, "xlsx", "row 2, column 端口 (port): 502.5 is not a whole number"),
    ("从站地址", "502.5", "csv", "row 2, column 从站地址 (unit): '502.5' is not a whole number"),
    ("从站地址", "abc", "csv", "row 2, column 从站地址 (unit): 'abc' is not a whole number"),
    ("采集周期(s)", "fast", "csv", "row 2, column 采集周期(s) (interval): 'fast' is not a number"),
    ("一级报警", "nan", "csv", "row 2, column 一级报警 (high): 'nan' is not a number"),
])
def test_cells_of_the_wrong_type_are_refused(column: str, cell: Any, filename: str, message: str) -> None:
    row = device_row()
    row[DEVICE_HEADER.index(column)] = cell
    data = csv_of([DEVICE_HEADER, row]) if filename == "csv" else xlsx_of([DEVICE_HEADER, row])
    [problem] = problems(data, f"d.{filename}")
    assert problem.startswith(message)


def test_every_bad_row_among_a_hundred_is_reported_at_once() -> None:
    rows = [DEVICE_HEADER] + [device_row(dev=f"gas-{i}", address=i * 2) for i in range(100)]
    rows[16] = device_row(dev="gas-15", port="50a")  # spreadsheet row 17
    rows[58] = device_row(dev="gas-57", address="x1")  # row 59
    rows[90] = device_row(dev="gas-89", port="", address=-0.5)  # row 91: one bad cell, one empty (default)
    for data, filename in ((csv_of(rows), "d.csv"), (xlsx_of(rows), "d.xlsx")):
        assert problems(data, filename) == [
            "row 17, column 端口 (port): '50a' is not a whole number (nor a serial port such as /dev/ttyUSB0)",
            "row 59, column 寄存器地址 (address): 'x1' is not a whole number",
            f"row 91, column 寄存器地址 (address): {'-0.5' if filename == 'd.csv' else -0.5!r} is not a whole number",
        ]


def test_rows_of_one_device_make_one_device_wherever_they_are() -> None:
    rows = [DEVICE_HEADER,
            device_row(point="lel"),
            ["", "", "", "", "", "", "", "o2", "氧气", "%VOL", "holding", 4, "float32", "", ""],  # merged cells
            device_row(dev="gas-2", point="lel"),
            ["hengyuan-chem", "gas-1", "", "", "", "", "", "ch4", "可燃气体", "%LEL", "holding", 8, "float32", "", ""]]
    table = read_table(csv_of(rows), "d.csv")
    devices = table.items["devices"]
    assert [(d["id"], [p["key"] for p in d["points"]]) for d in devices] == [("gas-1", ["lel", "o2", "ch4"]),
                                                                             ("gas-2", ["lel"])]
    assert [p.row for p in table.origin[("devices", 0)].points] == [2, 3, 5]
    rows[4][4] = 503
    assert problems(csv_of(rows), "d.csv") == [
        "row 5, column 端口 (port): 503 differs from 502 on row 2 for device hengyuan-chem/gas-1"]


# ---------------------------------------------------------------- headers


def test_unknown_column_suggests_the_known_one_and_other_rows_are_still_read() -> None:
    rows = [DEVICE_HEADER[:6] + ["采集周其(s)"] + DEVICE_HEADER[7:] + ["备注说明"], device_row(port="x") + ["y"]]
    assert problems(csv_of(rows), "d.csv") == [
        "row 1, column G: unknown column '采集周其(s)' in a devices register (did you mean '采集周期'?)",
        "row 1, column P: unknown column '备注说明' in a devices register",
        "row 2, column 端口 (port): 'x' is not a whole number (nor a serial port such as /dev/ttyUSB0)",
    ]


def test_a_header_row_of_no_register_lists_the_expected_columns() -> None:
    [problem] = problems(csv_of([["姓名", "电话"], ["张伟", "1"]]), "x.csv")
    assert problem.startswith("row 1: the header row is not that of a register: a grids register needs "
                              "网格编码 (id) and 网格名称 (name)")
    assert "采集周期/interval" in problem and "统一社会信用代码 (credit_code)" in problem
    assert problems(csv_of([["id", "name"]]), "x.csv") == [
        "row 1: the header row fits both a grids register and a enterprises register: add a column only one of "
        "them has, or use the Chinese headers"]
    assert problems(b"", "x.csv") == ["x.csv: the file has no header row"]
    assert problems(b"PK\x03\x04junk", "x.xlsx")[0].startswith("not a readable .xlsx workbook")
    assert problems(b"", "x.xls") == ["x.xls: a register is a .csv or .xlsx file (save the .xls as .xlsx)"]


def test_headers_are_unambiguous_and_point_kinds_are_all_spelt_in_chinese() -> None:
    for kind, columns in COLUMNS.items():
        names = [normal(n) for c in columns for n in (c.key, *c.names)]
        assert len(names) == len(set(names)) == len(LOOKUP[kind]), kind
    assert set(KINDS) == set(get_args(PointKind))


# ---------------------------------------------------------------- locate


def test_locate_turns_key_paths_into_rows_and_columns() -> None:
    rows = [["企业编号", "企业名称", "网格编码", "牵头部门"],
            ["hengyuan-chem", "恒源化工", "g-01", "应急管理局"],
            ["longling", "龙岭烟花", "nowhere", "应急管理局"]]
    enterprises = read_table(csv_of(rows), "e.csv", departments=DEPARTMENTS)
    devices = read_table(csv_of([DEVICE_HEADER, device_row(), device_row(point="h2s", address=2)[:13]
                                 + [30, 60]]), "d.csv")
    existing = {"id": "other", "name": "别家", "grid": "ghost", "lead_department": "yjj"}
    config = {"departments": [{"id": "yjj", "name": "应急管理局"}], "officers": [{"id": "o-1", "name": "张伟"}],
              "grids": [{"id": "g-01", "name": "东关村", "area": "32", "officers": ["o-1"]}],
              "enterprises": [existing, *enterprises.items["enterprises"]], "devices": devices.items["devices"]}
    with pytest.raises(ConfigError) as exc:
        parse_config(config)
    got = exc.value.problems
    assert ("enterprises[2] (longling).grid", "grid 'nowhere' does not exist") in got
    where = locate(got, enterprises, {("enterprises", 1): 0, ("enterprises", 2): 1})
    assert "row 3, column 网格编码 (grid): grid 'nowhere' does not exist" in where
    assert "enterprises[0] (other).grid: grid 'ghost' does not exist" in where  # not imported: as it was
    where = locate(got, devices, {("devices", 0): 0})
    assert any(w.startswith("row 3: ") and "looser than GB/T 50493-2019" in w for w in where), where
    on_key = [("devices[0] (hengyuan-chem/gas-1).points[1] (h2s).high", "too high"),
              ("devices[0] (hengyuan-chem/gas-1).port", "bad port"), ("devices[0] (hengyuan-chem/gas-1)", "whole")]
    assert locate(on_key, devices, {("devices", 0): 0}) == [
        "row 3, column 一级报警 (high): too high", "row 2, column 端口 (port): bad port", "row 2: whole"]


def test_locate_finds_a_device_column_on_the_row_that_gave_it() -> None:
    rows = [["enterprise", "device", "protocol", "timeout", "point", "kind"],
            ["e", "d", "modbus", "", "p1", "status"], ["e", "d", "", "5", "p2", "status"]]
    table = read_table(csv_of(rows), "d.csv")
    assert locate([("devices[7] (e/d).timeout", "timeout (5) must be below interval")], table,
                  {("devices", 7): 0}) == ["row 3, column timeout: timeout (5) must be below interval"]
    grids = read_table(csv_of([["网格编码", "网格名称", "区划代码", "网格员", "联系电话"],
                               ["g-01", "东关村", "x", "张伟", "1"]]), "g.csv")
    assert locate([("grids[0] (g-01).area", "pattern"), ("officers[3] (g-01-o1).phone", "bad"),
                   ("officers[3] (g-01-o1).id", "taken")], grids, {("grids", 0): 0, ("officers", 3): 0}) == [
        "row 2, column 区划代码 (area): pattern", "row 2, column 联系电话 (phones): bad", "row 2, id: taken"]


# ---------------------------------------------------------------- writing


GRIDS = {"grids": [{"id": "g-01", "name": "东关村", "area": "3201150010", "officers": ["o-1", "o-2"],
                    "responsible": "o-2"},
                   {"id": "g-02", "name": "=西关村", "area": "3201150011", "officers": ["o-3"]}],
         "officers": [{"id": "o-1", "name": "张伟", "phone": "13800000001"}, {"id": "o-2", "name": "李娜"},
                      {"id": "o-3", "name": "王芳", "phone": "013800000003"}]}
ENTERPRISES = {"enterprises": [
    {"id": "hengyuan-chem", "name": "恒源化工", "credit_code": "91320115MA1XYZ0001", "grid": "g-01",
     "lead_department": "yjj", "cooperating_departments": ["fire", "scj"], "phone": "13900000001"},
    {"id": "longling", "name": "龙岭烟花", "grid": "g-02", "lead_department": "fire", "address": "北路 2号"}]}
DEVICES = {"devices": [
    {"enterprise": "hengyuan-chem", "id": "gas-1", "name": "气体报警控制器", "protocol": "modbus",
     "host": "10.0.0.5", "port": 502, "unit": 3, "interval": 1.5, "timeout": 0.25, "points": [
         {"key": "lel", "kind": "combustible_gas", "unit": "%LEL", "register": "holding", "address": 0,
          "dtype": "float32", "order": "CDAB", "high": 20.0, "high_high": 40.0, "scale": 0.1},
         {"key": "h2s", "kind": "toxic_gas", "gas": "h2s", "unit": "ppm", "register": "input", "address": 2,
          "dtype": "uint16", "high": 6.6, "on_delay": 2.0, "rate_of_change": 0.1 + 0.2},
         {"key": "run", "kind": "status", "register": "coil", "address": 10, "alarm_mask": 1}]},
    {"enterprise": "hengyuan-chem", "id": "tanks", "protocol": "mqtt", "stale_after": 30.0, "points": [
        {"key": "t1", "name": "1号罐温度", "kind": "temperature", "unit": "°C", "range_low": -20.0,
         "range_high": 120.0, "high": 60.0}]},
    {"enterprise": "longling", "id": "rtu-1", "protocol": "modbus", "transport": "rtu", "port": "/dev/ttyUSB0",
     "baudrate": 19200, "parity": "E", "points": [
         {"key": "o2", "kind": "oxygen", "unit": "%VOL", "register": "holding", "address": 0, "dtype": "int16",
          "signal": "4-20mA", "range_low": 0.0, "range_high": 25.0}]}]}


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("chinese", [True, False])
@pytest.mark.parametrize("kind,items", [("grids", GRIDS), ("enterprises", ENTERPRISES), ("devices", DEVICES)])
def test_what_write_table_writes_reads_back_the_same(kind: str, items: dict, fmt: str, chinese: bool) -> None:
    data = write_table(kind, items, fmt, chinese=chinese)
    table = read_table(data, f"register.{fmt}")
    assert table.kind == kind and table.items == items
    assert _typed(table.items) == _typed(items)  # 502 stays an int, 20.0 a float
    again = read_table(write_table(kind, table.items, fmt, chinese=chinese), f"again.{fmt}")
    assert again.items == items


def _typed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


def test_written_register_has_the_used_columns_in_order_and_a_bom() -> None:
    data = write_table("enterprises", ENTERPRISES, "csv")
    assert data.startswith(b"\xef\xbb\xbf")
    header = data.decode("utf-8-sig").splitlines()[0]
    assert header == "企业编号,企业名称,统一社会信用代码,所属网格,牵头部门,配合部门,地址,联系电话"
    english = write_table("devices", DEVICES, "csv", chinese=False).decode("utf-8-sig").splitlines()
    assert english[0].startswith("enterprise,device,device_name,protocol,transport,host,port,unit,interval,")
    assert len(english) == 1 + 5  # a row per point
    assert "采集周期(s)" in write_table("devices", DEVICES, "csv").decode("utf-8-sig").splitlines()[0]
    assert ",可燃气体," in write_table("devices", DEVICES, "csv").decode("utf-8-sig")


def test_write_table_refuses_what_a_register_cannot_hold() -> None:
    officers = [{"id": "o-1", "name": "张伟", "duty": ["mon-fri 08:00-18:00"]}, {"id": "o-9", "name": "闲人"}]
    grids = {"grids": [{"id": "g-01", "name": "东关村", "area": "32", "officers": ["o-1", "o-2"]}],
             "officers": officers}
    with pytest.raises(TableError) as exc:
        write_table("grids", grids, "csv")
    assert exc.value.problems == [
        "officer 'o-1': 'duty' cannot be written in a register",
        "grid 'g-01': officers ['o-2'] are not among the officers given",
        "officers ['o-9'] are in no grid: a grids register holds only the officers of its grids",
    ]


def test_a_table_is_what_read_table_returns() -> None:
    table = read_table(write_table("grids", GRIDS, "xlsx"), "g.xlsx")
    assert isinstance(table, Table) and set(table.items) == {"grids", "officers"}
    assert {k for k in table.origin} == {("grids", 0), ("grids", 1), ("officers", 0), ("officers", 1),
                                        ("officers", 2)}
