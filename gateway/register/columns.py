"""The columns of the towns' registers (grids, enterprises, devices), how a cell becomes a value, and
the files registers are in (CSV and .xlsx rows in and out).

Each column has an English key (the TOML key, except where noted by ``field``) and Chinese headers,
the first of which is written. Headers match after all whitespace is removed, a leading ``*`` (a
template's mark of a required column) is dropped, a trailing unit in parentheses (``采集周期(s)``,
``采集周期（秒）``) is dropped, and English is lower-cased.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.errors import GridgateError

LIST_SEPARATOR = re.compile(r"\s*[,，、;；]\s*")
SERIAL_PORT = re.compile(r"^(/.+|COM[0-9]+)$", re.IGNORECASE)
HEX = re.compile(r"^[+-]?0[xX][0-9a-fA-F]+$")
TRAILING_UNIT = re.compile(r"[(（][^()（）]*[)）]$")

KINDS = {"combustible_gas": ("可燃气体",), "toxic_gas": ("有毒气体",), "oxygen": ("氧气", "氧含量"),
         "temperature": ("温度",), "pressure": ("压力",), "level": ("液位",), "flow": ("流量",),
         "vibration": ("振动",), "current": ("电流",), "status": ("状态",)}
GASES = {"h2s": ("硫化氢",), "co": ("一氧化碳",), "nh3": ("氨气", "氨"), "cl2": ("氯气",), "benzene": ("苯",)}
REGISTERS = {"holding": ("保持寄存器",), "input": ("输入寄存器",), "coil": ("线圈",), "discrete": ("离散输入",)}
SIGNALS: dict[str, tuple[str, ...]] = {"value": (), "4-20mA": ()}
PARITIES = {"N": ("无", "无校验"), "E": ("偶", "偶校验"), "O": ("奇", "奇校验")}


@dataclass(frozen=True)
class Column:
    key: str  # the English header
    names: tuple[str, ...]  # the Chinese headers; the first is written
    type: str = "text"  # text | list | int | number | port
    field: str = ""  # the item's key, when it is not ``key``
    case: str = ""  # "lower" | "upper": how a text value is normalised
    choices: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # value -> its Chinese spellings
    hint: str = ""  # the unit written after the Chinese header

    @property
    def to(self) -> str:
        return self.field or self.key

    def header(self, chinese: bool) -> str:
        return self.names[0] + self.hint if chinese else self.key

    def value(self, raw: Any) -> Any:
        """A cell (a str from CSV; a str, int or float from xlsx) as the item's value; ValueError says
        why it cannot be one. The caller skips empty cells."""
        if self.type == "int":
            return whole(raw)
        if self.type == "number":
            return number(raw)
        if self.type == "port":
            return port(raw)
        value = text(raw)
        if self.choices:
            for choice, spellings in self.choices.items():
                if value.lower() == choice.lower() or value in spellings:
                    return choice
        return value.lower() if self.case == "lower" else value.upper() if self.case == "upper" else value

    def written(self, value: Any, chinese: bool) -> Any:
        """A value of an item as the cell to write (lists joined, enumerations in Chinese)."""
        if isinstance(value, list):
            return ",".join("" if v is None else str(v) for v in value)
        if chinese and isinstance(value, str) and self.choices.get(value):
            return self.choices[value][0]
        return value


def _columns(*specs: Column) -> tuple[Column, ...]:
    return specs


S = "(s)"
GRIDS = _columns(
    Column("id", ("网格编码", "网格编号")),
    Column("name", ("网格名称",)),
    Column("area", ("区划代码", "所属区划代码", "行政区划代码")),
    Column("officers", ("网格员编号",), "list"),
    Column("officer_names", ("网格员", "网格员姓名"), "list"),
    Column("phones", ("联系电话", "网格员电话"), "list"),
    Column("responsible", ("责任人编号",)),
    Column("contact", ("联络员编号",)),
)
ENTERPRISES = _columns(
    Column("id", ("企业编号",)),
    Column("name", ("企业名称",)),
    Column("credit_code", ("统一社会信用代码",), case="upper"),
    Column("grid", ("所属网格", "网格编码")),
    Column("lead_department", ("牵头部门", "行业主管部门")),
    Column("cooperating_departments", ("配合部门",), "list"),
    Column("risk_class", ("风险类别", "行业类别")),
    Column("address", ("地址", "企业地址")),
    Column("contact", ("安全负责人", "联系人")),
    Column("phone", ("联系电话",)),
)
DEVICE_COLUMNS = _columns(
    Column("enterprise", ("企业编号",)),
    Column("device", ("设备编号",), field="id"),
    Column("device_name", ("设备名称",), field="name"),
    Column("protocol", ("协议",), case="lower"),
    Column("transport", ("传输方式",), case="lower"),
    Column("host", ("IP地址", "主机")),
    Column("port", ("端口",), "port"),
    Column("unit", ("从站地址",), "int"),
    Column("interval", ("采集周期",), "number", hint=S),
    Column("timeout", ("超时",), "number", hint=S),
    Column("stale_after", ("离线判定",), "number", hint=S),
    Column("baudrate", ("波特率",), "int"),
    Column("bytesize", ("数据位",), "int"),
    Column("parity", ("校验位",), case="upper", choices=PARITIES),
    Column("stopbits", ("停止位",), "int"),
)
POINT_COLUMNS = _columns(
    Column("point", ("测点编号",), field="key"),
    Column("point_name", ("测点名称",), field="name"),
    Column("kind", ("测点类型",), case="lower", choices=KINDS),
    Column("gas", ("气体",), case="lower", choices=GASES),
    Column("point_unit", ("计量单位",), field="unit"),
    Column("register", ("寄存器类型",), case="lower", choices=REGISTERS),
    Column("address", ("寄存器地址",), "int"),
    Column("dtype", ("数据类型",), case="lower"),
    Column("order", ("字节序",), case="upper"),
    Column("bit", ("位",), "int"),
    Column("count", ("寄存器数",), "int"),
    Column("scale", ("倍率",), "number"),
    Column("offset", ("偏移",), "number"),
    Column("signal", ("信号",), choices=SIGNALS),
    Column("range_low", ("量程下限",), "number"),
    Column("range_high", ("量程上限",), "number"),
    Column("low_low", ("低低报",), "number"),
    Column("low", ("低报",), "number"),
    Column("high", ("一级报警", "高报"), "number"),
    Column("high_high", ("二级报警", "高高报"), "number"),
    Column("deadband", ("死区",), "number"),
    Column("on_delay", ("报警延时",), "number", hint=S),
    Column("off_delay", ("恢复延时",), "number", hint=S),
    Column("rate_of_change", ("变化率",), "number", hint="(/min)"),
    Column("rate_window", ("变化率窗口",), "number", hint=S),
    Column("alarm_mask", ("报警掩码",), "int"),
    Column("suppressed_by", ("抑制测点",)),
)
COLUMNS: dict[str, tuple[Column, ...]] = {
    "grids": GRIDS,
    "enterprises": ENTERPRISES,
    "devices": DEVICE_COLUMNS + POINT_COLUMNS,
}
# What a header row must have to be a register of each kind: every group, one column of each.
REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "grids": (("id",), ("name",)),
    "enterprises": (("name",), ("id", "credit_code")),
    "devices": (("enterprise",), ("device",)),
}


def normal(header: Any) -> str:
    """A header as it is matched: no whitespace, no leading ``*``, no trailing ``(unit)``, lower-case."""
    h = re.sub(r"\s+", "", "" if header is None else str(header)).lstrip("*＊")
    return TRAILING_UNIT.sub("", h).lower()


LOOKUP: dict[str, dict[str, Column]] = {
    kind: {normal(name): c for c in columns for name in (c.key, *c.names)} for kind, columns in COLUMNS.items()
}


def column_of(kind: str, header: str) -> Column | None:
    return LOOKUP[kind].get(normal(header))


def where(row: int, header: str, key: str) -> str:
    """``row 17, column 端口 (port)``; the key is left out when the header is the key."""
    shown = header if normal(header) == key else f"{header} ({key})"
    return f"row {row}, column {shown}"


def split_list(value: str, expected: int | None = None) -> list[str]:
    """A list cell's entries: separated by ``,，、;；``; by whitespace only when there is none of those
    and more than one entry is ``expected`` (so that ``Zhang Wei`` stays one name of one officer).
    Empty entries between separators are kept (a missing phone)."""
    if not value:
        return []
    if LIST_SEPARATOR.search(value):
        return LIST_SEPARATOR.split(value)
    return [value] if expected == 1 else value.split()


def text(raw: Any) -> str:
    if isinstance(raw, str):
        return raw.strip()
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError(f"{raw!r} is not text")
    if isinstance(raw, float) and raw.is_integer() and abs(raw) < 2**53:
        return str(int(raw))  # a code or a phone number typed as a number in Excel
    return str(raw)


def whole(raw: Any) -> int:
    if type(raw) is int:
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str):
        value = raw.strip()
        if HEX.match(value):
            return int(value, 16)
        try:
            d = Decimal(value)
        except InvalidOperation:
            d = Decimal("NaN")
        if d.is_finite() and d == d.to_integral_value():
            return int(d)
    raise ValueError(f"{raw!r} is not a whole number")


def number(raw: Any) -> float:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    else:
        try:
            value = float(raw.strip()) if isinstance(raw, str) else math.nan
        except ValueError:
            value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{raw!r} is not a number")
    return value


def port(raw: Any) -> int | str:
    """A TCP port number, or a serial port's path (``/dev/ttyUSB0``, ``COM3``) for transport rtu."""
    try:
        return whole(raw)
    except ValueError:
        if isinstance(raw, str) and SERIAL_PORT.match(raw.strip()):
            return raw.strip()
        raise ValueError(f"{raw!r} is not a whole number (nor a serial port such as /dev/ttyUSB0)") from None


def number_text(value: float) -> str:
    """A float as CSV writes it: ``25`` for 25.0, else every digit it has."""
    return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)


def describe(kind: str) -> str:
    """A kind's columns for an error message: ``网格编码/id, 网格名称/name, ...``."""
    return ", ".join(f"{c.names[0]}/{c.key}" for c in COLUMNS[kind])


def required_text(kind: str) -> str:
    groups: Sequence[tuple[str, ...]] = REQUIRED[kind]
    cols = {c.key: c for c in COLUMNS[kind]}
    return " and ".join(" or ".join(f"{cols[k].names[0]} ({k})" for k in group) for group in groups)


class TableError(GridgateError):
    """A register that cannot be read or written; ``problems`` holds every problem, each naming its
    row and column (``row 17, column 端口 (port): '50a' is not a whole number``)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


# ---------------------------------------------------------------- files


def blank(cell: Any) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def csv_rows(data: bytes) -> list[tuple[int, list[str]]]:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise TableError(["the CSV file is UTF-16: save it as CSV UTF-8 (or CSV in GBK)"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise TableError([f"the CSV file is neither UTF-8 nor GB18030 (byte {exc.start})"]) from exc
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","
    return list(enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1))


def xlsx_rows(data: bytes) -> list[tuple[int, Sequence[Any]]]:
    from openpyxl import load_workbook  # imported when a workbook is read: not on the start-up path
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        with warnings.catch_warnings():  # openpyxl warns of styles and extensions it does not read
            warnings.simplefilter("ignore")
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            try:
                return list(enumerate(book.worksheets[0].iter_rows(values_only=True), start=1))
            finally:
                book.close()
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, IndexError, OSError) as exc:
        raise TableError([f"not a readable .xlsx workbook: {exc}"]) from exc


def letter(position: int) -> str:
    out, n = "", position + 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(65 + r) + out
    return out


def csv_bytes(header: list[str], body: list[list[Any]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(header)
    for values in body:
        writer.writerow(["" if v is None else number_text(v) if isinstance(v, float) else v for v in values])
    return out.getvalue().encode("utf-8-sig")


def xlsx_bytes(kind: str, header: list[str], body: list[list[Any]]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.utils.exceptions import IllegalCharacterError

    book = Workbook(write_only=True)
    sheet = book.create_sheet(kind)
    try:
        for values in [header, *body]:
            sheet.append([_xlsx_cell(sheet, v) for v in values])
    except IllegalCharacterError as exc:
        raise TableError([f"a value has a character a workbook cannot hold: {exc}"]) from exc
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _xlsx_cell(sheet: Any, value: Any) -> Any:
    from openpyxl.cell import WriteOnlyCell

    if isinstance(value, float) and float(f"{value:.16g}") != value:
        return repr(value)  # openpyxl keeps 16 digits: a number that needs 17 is written as its text
    if isinstance(value, str) and value.startswith("="):
        cell = WriteOnlyCell(sheet, value)
        cell.data_type = "s"  # text, never a formula
        return cell
    return value
