"""`gridgate import` and `gridgate export-registry` on a town's registers: 500 grids and 5,000
enterprises generated here, a dry run that changes nothing, a malformed row that refuses the whole
import with its row and column, a running gateway that takes what the command imported, and the
export that reads back as the same registry."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.register.store import RegisterStore
from gateway.root.cli import main
from tests.helpers import wait_for
from tests.server import ApiServer

CONFIG = """
[gateway]
id = "town"

[[departments]]
id = "yjj"
name = "应急管理局"

[[departments]]
id = "fire"
name = "消防救援大队"

[[officers]]
id = "o-0"
name = "张伟"

[[grids]]
id = "g-0"
name = "seed grid"
area = "430903001000"
officers = ["o-0"]
"""


def grids_csv(n: int) -> str:
    rows = ["网格编码,网格名称,区划代码,网格员编号,网格员,联系电话"]
    rows += [f"g{i:03d},第{i}网格,430903{i:06d},o{i:03d}a、o{i:03d}b,网格员{i}甲、网格员{i}乙,"
             f"1380000{i:04d}、1390000{i:04d}" for i in range(n)]
    return "\n".join(rows) + "\n"


def enterprises_csv(n: int, grids: int, bad_row: int | None = None) -> str:
    rows = ["统一社会信用代码,企业名称,所属网格,牵头部门,配合部门,地址,安全负责人,联系电话"]
    for i in range(n):
        grid = f"g{i % grids:03d}" if i != bad_row else "g999"
        rows.append(f"91430903MA{i:08d},企业{i}有限公司,{grid},应急管理局,消防救援大队,某镇某路{i}号,负责人{i},"
                    f"0736-{i:07d}")
    return "\n".join(rows) + "\n"


@pytest.fixture
def town(tmp_path: Path) -> Path:
    (tmp_path / "gridgate.toml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "grids.csv").write_text(grids_csv(500), encoding="utf-8")
    (tmp_path / "enterprises.csv").write_text(enterprises_csv(5000, 500), encoding="utf-8")
    return tmp_path


def gridgate(town: Path, *args: str) -> int:
    return main([args[0], "-c", str(town / "gridgate.toml"), "--data-dir", str(town / "data"), *args[1:]])


def test_a_town_register_imports_with_a_dry_run_first(town: Path, capsys):
    grids, ents = str(town / "grids.csv"), str(town / "enterprises.csv")
    assert gridgate(town, "import", "--dry-run", ents, grids) == 0  # grids go first, whatever the order given
    out = capsys.readouterr().out
    assert out.strip() == ("grids+enterprises register: would create 1000 officers, 500 grids, 5000 enterprises; "
                           "would replace nothing; 0 unchanged (dry run: nothing changed)")
    store = RegisterStore(town / "data" / "registry.db")
    assert store.version == 1 and len(store.items()["enterprises"]) == 0  # the dry run changed nothing
    store.close()

    t = time.monotonic()
    assert gridgate(town, "import", ents, grids) == 0
    took = time.monotonic() - t
    assert "created 1000 officers, 500 grids, 5000 enterprises" in capsys.readouterr().out
    store = RegisterStore(town / "data" / "registry.db")
    items = store.items()
    assert len(items["grids"]) == 501 and len(items["enterprises"]) == 5000 and store.version == 2  # one change
    e = next(x for x in items["enterprises"] if x["id"] == "91430903ma00004321")
    assert e == {"id": "91430903ma00004321", "name": "企业4321有限公司", "credit_code": "91430903MA00004321",
                 "grid": "g321", "lead_department": "yjj", "cooperating_departments": ["fire"],
                 "address": "某镇某路4321号", "contact": "负责人4321", "phone": "0736-0004321"}
    assert len([a for a in store.audit(limit=10_000) if a["actor"] == "cli"]) == 6500
    store.close()
    print(f"imported 500 grids, 1000 officers and 5000 enterprises in {took:.1f} s")  # the figure: see README


def test_a_malformed_row_refuses_the_whole_import(town: Path, capsys):
    assert gridgate(town, "import", str(town / "grids.csv")) == 0
    (town / "bad.csv").write_text(enterprises_csv(5000, 500, bad_row=3999), encoding="utf-8")
    assert gridgate(town, "import", str(town / "bad.csv")) == 1
    err = capsys.readouterr().err
    assert "row 4001, column 所属网格 (grid): grid 'g999' does not exist" in err
    assert "refused, nothing imported (1 problem(s))" in err
    assert "bad.csv: row 4001" in err
    # a cell that is not a value at all is found before validation, with every such row at once
    text = enterprises_csv(50, 500).replace("某镇某路7号", "某镇某路7号,extra").replace("某镇某路9号", "某镇某路9号,x")
    (town / "bad2.csv").write_text(text, encoding="utf-8")
    assert gridgate(town, "import", str(town / "bad2.csv")) == 1
    err = capsys.readouterr().err
    assert "row 9" in err and "row 11" in err
    store = RegisterStore(town / "data" / "registry.db")
    assert len(store.items()["enterprises"]) == 0
    store.close()


def test_a_running_gateway_takes_the_import_and_the_export_reads_back(town: Path, capsys):
    from gateway.config import load_config

    cfg = load_config(town / "gridgate.toml")
    with ApiServer(town / "data", cfg.model_dump(mode="json", by_alias=True, exclude_unset=True)) as server:
        assert gridgate(town, "import", str(town / "grids.csv")) == 0
        wait_for(lambda: len(server.gw.registry.grids) == 501, timeout=6, what="the gateway to follow registry.db")
        assert server.gw.registry.grids["g042"].officers == ["o042a", "o042b"]
        assert server.gw.registry.officers["o042b"].phone == "13900000042"
    assert gridgate(town, "export-registry", "--out", str(town / "out"), "--kind", "grids") == 0
    capsys.readouterr()
    # the export imports as no change at all
    assert gridgate(town, "import", "--dry-run", str(town / "out" / "grids.csv")) == 0
    assert "would create nothing; would replace nothing; 1502 unchanged" in capsys.readouterr().out  # with g-0, o-0
