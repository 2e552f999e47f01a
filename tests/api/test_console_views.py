"""Every view of the console in headless Chromium, at 390 × 844 (a phone) and 1366 × 800 (a desktop).

The officer's whole case: the leak alarm arrives without a reload, the officer opens it, reads the
trend (the readings and the limit lines), acknowledges with a note, dispatches to a department picked
from exactly the enterprise's own (another department is not offered); the department reports back
from its login; the gas falls and the officer verifies and closes. Then the grid, the enterprise (tiles
updating live, a zoomable trend) and the statistics. The page is never wider than the viewport, and a
screenshot of each view at each size goes to ``tests/artifacts/console/``.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.api.test_console import SIZES, browser, card, console_page, fits, log_in, shot
from tests.helpers import wait_for
from tests.server import ApiServer, make_config

LEAK = "hengyuan/gas/ch4"
S = 1_000_000_000


@pytest.fixture
def server_config() -> dict[str, Any]:
    """The tests' district with the names and contacts a town's registers have."""
    cfg = make_config()
    names = {"yjj": "应急管理局", "fire": "消防救援大队", "market": "市场监督管理局"}
    cfg["departments"] = [{"id": d, "name": n} for d, n in names.items()]
    people = {"zhang": "张伟", "wang": "王芳", "li": "李明"}
    cfg["officers"] = [{"id": o, "name": n} for o, n in people.items()]
    cfg["enterprises"][0].update(contact="刘建国", phone="0737-4212345", address="赫山区龙岭村工业园 8 号")
    for device in cfg["devices"]:
        device["name"] = "气体报警控制器"
    return cfg


def history(srv: ApiServer, sensor: str, seconds: int, start: float, step: float) -> None:
    """Readings of ``sensor`` every 2 s over the last ``seconds``, rising from ``start`` by ``step``."""
    now = time.time_ns()
    ts = [now - (seconds - i) * S for i in range(0, seconds, 2)]
    srv.submit_series(sensor, ts, [start + step * i for i in range(len(ts))])


@SIZES
def test_an_officer_handles_the_leak_with_a_department(server: ApiServer, size: tuple[int, int]) -> None:
    srv = server
    history(srv, LEAK, 120, 2.0, 0.25)  # the gas creeping up before the alarm
    with browser() as b:
        with console_page(srv, size, b) as page:
            log_in(page, "zhang")
            expect(page.locator("#view .empty")).to_be_visible()
            leak = srv.raise_alarm(LEAK, 30.0)  # arrives without a reload
            row = card(page, leak["id"])
            expect(row).to_contain_text("恒源化工")
            expect(row.locator(".c-sensor")).to_have_text("气体报警控制器 · 可燃气体 CH4")
            srv.submit({LEAK: 55.0})
            expect(row.locator(".c-level")).to_have_text("二级报警 high-high")
            expect(row.locator(".c-peak")).to_contain_text("55 %LEL", timeout=35_000)  # at the latest the 30 s re-read
            fits(page)
            row.click()
            # the trend over the alarm's span: the readings, the limit lines, the start marked
            chart = page.locator("#trend svg.trend")
            expect(chart.locator("path.series")).to_have_count(1)
            assert int(chart.locator("path.series").get_attribute("data-points") or 0) >= 20
            expect(chart.locator("line.limit[data-limit=high]")).to_have_attribute("data-value", "25")
            expect(chart.locator("line.limit[data-limit=high_high]")).to_have_attribute("data-value", "50")
            expect(chart.locator("line.mark.start")).to_have_count(1)
            facts = page.locator(".card.enterprise")
            for text in ("刘建国", "0737-4212345", "赫山区龙岭村工业园 8 号", "应急管理局", "消防救援大队",
                         "龙岭村网格"):
                expect(facts).to_contain_text(text)
            expect(page.locator("form.act-close")).to_have_count(0)  # the gas is still there
            expect(page.locator("#actions")).to_contain_text("条件消除并确认后方可结案")
            shot(page, "alarm-detail")
            # acknowledge with a note
            page.fill("form.act-ack textarea[name=note]", "已电话通知企业，正赶赴现场")
            page.click("form.act-ack button[type=submit]")
            expect(page.locator(".history li[data-type=acknowledged]")).to_contain_text("正赶赴现场")
            expect(page.locator("form.act-ack")).to_have_count(0)
            expect(page.locator(".card.head")).to_contain_text("张伟")
            # dispatch: exactly the enterprise's lead and cooperating departments, by name
            options = page.locator("form.act-dispatch select option").evaluate_all(
                "os => os.map(o => [o.value, o.textContent])")
            assert [v for v, _ in options] == ["", "yjj", "fire"], options
            assert "应急管理局（牵头）" in json.dumps(options, ensure_ascii=False)
            assert "市场监督管理局" not in json.dumps(options, ensure_ascii=False)  # not this enterprise's
            page.select_option("form.act-dispatch select", "fire")
            page.fill("form.act-dispatch textarea[name=note]", "请检查喷淋与泄漏阀门")
            page.click("form.act-dispatch button[type=submit]")
            expect(page.locator(".card.head")).to_contain_text("已派遣 → 消防救援大队")
            expect(page.locator("#actions")).to_contain_text("等待部门反馈")
            expect(page.locator("form.act-resolve")).to_have_count(0)  # the department reports back
            shot(page, "alarm-dispatched")
        with console_page(srv, size, b) as dept:
            log_in(dept, "fire")
            case = dept.locator(f".card.case[data-id='{leak['id']}']")
            expect(case).to_contain_text("请检查喷淋与泄漏阀门")
            expect(case).to_contain_text("恒源化工")
            fits(dept)
            shot(dept, "department-cases")
            case.locator("textarea[name=note]").fill("喷淋测试正常，泄漏阀门已更换")
            case.locator("button[type=submit]").click()
            expect(dept.locator(f".done-list li[data-id='{leak['id']}']")).to_contain_text("已反馈")
        with console_page(srv, size, b) as page:
            log_in(page, "zhang")
            card(page, leak["id"]).click()
            expect(page.locator(".history li[data-type=resolved]")).to_contain_text("泄漏阀门已更换")
            expect(page.locator("form.act-close")).to_have_count(0)
            srv.submit({LEAK: 1.0})  # the gas falls: cleared, and acknowledged before, so normal
            close = page.locator("form.act-close")
            expect(close).to_be_visible()
            close.locator("textarea[name=note]").fill("复查浓度正常，同意结案")
            close.locator("button[type=submit]").click()
            expect(page.locator(".card.head")).to_contain_text("已结案")
            expect(page.locator("#trend line.mark.end")).to_have_count(1)
            shot(page, "alarm-closed")
    a = srv.gw.book.get(leak["id"])
    assert (a.acked_by, a.ack_note, a.department, a.case, a.closed_by) == (
        "zhang", "已电话通知企业，正赶赴现场", "fire", "closed", "zhang")
    steps = [(e.type, e.actor, e.note) for e in srv.gw.book.history(leak["id"])]
    assert ("dispatched", "zhang", "请检查喷淋与泄漏阀门") in steps
    assert ("resolved", "fire", "喷淋测试正常，泄漏阀门已更换") in steps
    assert ("closed", "zhang", "复查浓度正常，同意结案") in steps


def test_a_refused_action_is_shown_by_its_form(server: ApiServer) -> None:
    srv = server
    alarm = srv.raise_alarm(LEAK, 30.0)
    with console_page(srv) as page:
        log_in(page, "zhang")
        page.goto(f"http://127.0.0.1:{srv.port}/#/alarm/{alarm['id']}")
        page.click("details[data-act=shelve] summary")  # the less usual actions open from their title
        shelve = page.locator("form.act-shelve")
        assert shelve.locator("select option").all_inner_texts() == ["15 分钟", "30 分钟", "1 小时", "2 小时", "4 小时",
                                                                     "8 小时"]
        # someone else shelved it meanwhile (straight in the book: no live event reaches the page), so the
        # gateway refuses (409): the answer is shown under the form, and the page goes on
        now = srv.gw.clock.now_ns() // 10**6
        srv.gw.book.shelve(alarm["id"], "admin", "maintenance", now + 600_000, now)
        shelve.locator("input[name=reason]").fill("传感器校准")
        shelve.locator("button[type=submit]").click()
        expect(shelve.locator(".form-error")).to_contain_text("shelved")
        expect(page.locator(".card.head")).to_contain_text("恒源化工")


def span(page: Page) -> int:
    box = page.locator("#ent-trend")
    return int(box.get_attribute("data-end") or 0) - int(box.get_attribute("data-start") or 0)


@SIZES
def test_grids_enterprise_and_statistics(server: ApiServer, size: tuple[int, int]) -> None:
    srv = server
    history(srv, LEAK, 1800, 2.0, 0.01)
    srv.submit({"hengyuan/gas/t1": 24.0})
    srv.raise_alarm("hengyuan/gas/ch4b", 30.0)
    with browser() as b:
        with console_page(srv, size, b) as page:
            log_in(page, "zhang")
            page.click("#nav a[data-view=grids]")
            row = page.locator(".ent-row[data-enterprise=hengyuan]")
            expect(row).to_contain_text("未结报警 1")
            expect(row).to_contain_text("离线设备 0")
            expect(page.locator(".grid-card")).to_contain_text("张伟")
            shot(page, "grids")
            row.locator("a").click()
            tile = page.locator(".tile[data-sensor='hengyuan/gas/t1']")
            expect(tile).to_contain_text("24 °C")
            srv.submit({"hengyuan/gas/t1": 61.5})  # over its high of 60
            expect(tile).to_contain_text("61.5 °C", timeout=10_000)
            expect(tile).to_have_class(re.compile(r"\bst-high\b"))
            expect(page.locator(".tile[data-sensor='hengyuan/gas/ch4b']")).to_have_class(re.compile(r"\bst-high\b"))
            chart = page.locator("#ent-trend svg.trend")
            expect(chart.locator("line.limit[data-limit=high_high]")).to_have_count(1)
            assert int(chart.locator("path.series").get_attribute("data-points") or 0) >= 100
            before = span(page)
            chart.scroll_into_view_if_needed()
            box = chart.bounding_box()
            assert box is not None
            y = box["y"] + box["height"] / 2
            page.mouse.move(box["x"] + box["width"] * 0.5, y)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.8, y, steps=6)
            page.mouse.up()
            wait_for(lambda: span(page) < before * 0.5, what="the trend to zoom in")
            fits(page)
            shot(page, "enterprise")
        with console_page(srv, size, b) as page:
            log_in(page, "town")
            page.click("#nav a[data-view=stats]")
            expect(page.locator("#stats-grids table")).to_contain_text("龙岭村网格")
            expect(page.locator("#stats-grids svg.bars line.ref.target")).to_have_count(1)
            expect(page.locator("#stats-grids svg.mix")).to_have_count(1)
            expect(page.locator("#stats-officers table")).to_contain_text("张伟")
            shot(page, "statistics")
            page.click("#nav a[data-view=alarms]")
            expect(page.locator("tr.alarm")).to_have_count(2)  # ch4b and t1 of the town's grid 1
            shot(page, "supervisor-alarms")
