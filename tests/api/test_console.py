"""The officer console in headless Chromium (Debian `chromium`): log in, see an alarm arrive live, ack it;
renew an expired access token with the refresh token, and end the session on logout."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from gateway.clock import ManualClock
from tests.helpers import wait_for
from tests.peers import need_binary
from tests.server import ApiServer, make_config

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextmanager
def console_page(srv: ApiServer) -> Iterator[Page]:
    """A page of headless Chromium (Debian's ``chromium``) on the console of ``srv``."""
    chromium = need_binary("chromium", "chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
        try:
            page = browser.new_page()
            refused: list[str] = []  # what the page's Content-Security-Policy blocked: must be nothing
            page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
            page.goto(f"http://127.0.0.1:{srv.port}/")
            yield page
            assert refused == []
        finally:
            browser.close()


def test_console_shows_live_alarm_and_acks(server: ApiServer, tmp_path: Path) -> None:
    srv = server
    with console_page(srv) as page:
        page.fill("input[name=username]", "zhang")
        page.fill("input[name=password]", "wrong")
        page.click("button[type=submit]")
        expect(page.locator("#login-error")).to_contain_text("wrong username or password")
        page.fill("input[name=password]", "zhang")
        page.click("button[type=submit]")
        expect(page.locator("#status")).to_contain_text("live")
        # an alarm in zhang's grid arrives live at the top; one in another grid never shows
        srv.raise_alarm("shimen/gas/ch4", 60.0)
        alarm = srv.raise_alarm("hengyuan/gas/ch4", 30.0)
        row = page.locator("#alarms tr").first
        expect(row).to_contain_text("hengyuan/gas/ch4")
        expect(row).to_contain_text("high")
        answers = ["going to site", "fire", "please inspect the valve", "verified on site"]
        page.on("dialog", lambda d: d.accept(answers.pop(0)))
        row.get_by_role("button", name="确认 Ack").click()
        expect(page.locator("#alarms tr").first).to_contain_text("zhang")
        assert page.locator("#alarms tr").count() == 1
        # dispatch to a cooperating department, then the gas clears and the officer closes
        row.get_by_role("button", name="派遣 Dispatch").click()
        expect(page.locator("#alarms tr").first).to_contain_text("dispatched → fire")
        srv.gw.book.resolve(alarm["id"], "fire", "valve replaced", srv.gw.clock.now_ns() // 1_000_000)
        srv.submit({"hengyuan/gas/ch4": 0.0})  # cleared: the live stream brings the normal state
        close = page.locator("#alarms tr").first.get_by_role("button", name="结案 Close")
        expect(close).to_be_visible()
        close.click()
        expect(page.locator("#alarms tr").first).to_contain_text("closed")
        page.screenshot(path=str(tmp_path / "console.png"))
        assert answers == []
    acked = wait_for(lambda: srv.gw.book.get(alarm["id"]).acked_by == "zhang", what="the ack")
    assert acked
    a = srv.gw.book.get(alarm["id"])
    assert (a.ack_note, a.department, a.case, a.closed_by) == ("going to site", "fire", "closed", "zhang")
    notes = [(e.type, e.note) for e in srv.gw.book.history(alarm["id"])]
    assert ("dispatched", "please inspect the valve") in notes and ("closed", "verified on site") in notes


def test_a_department_reports_back_from_the_console(server: ApiServer) -> None:
    srv = server
    alarm = srv.raise_alarm("hengyuan/gas/ch4", 30.0)
    now = srv.gw.clock.now_ns() // 1_000_000
    srv.gw.book.dispatch(alarm["id"], "zhang", "fire", "check the sprinklers", now)
    with console_page(srv) as page:
        page.fill("input[name=username]", "fire")
        page.fill("input[name=password]", "fire")
        page.click("button[type=submit]")
        row = page.locator("#alarms tr").first
        expect(row).to_contain_text("dispatched → fire")
        assert row.get_by_role("button", name="派遣 Dispatch").count() == 0  # not the department's to do
        page.on("dialog", lambda d: d.accept("sprinklers tested, valve sealed"))
        row.get_by_role("button", name="反馈 Report back").click()
        expect(page.locator("#alarms tr").first).to_contain_text("resolved")
    a = srv.gw.book.get(alarm["id"])
    assert a.case == "resolved"
    assert [(e.type, e.actor, e.note) for e in srv.gw.book.history(alarm["id"])][-1] == (
        "resolved", "fire", "sprinklers tested, valve sealed")


def test_the_console_renews_its_token_and_logs_out(tmp_path: Path) -> None:
    clock = ManualClock(time.time_ns())
    with ApiServer(tmp_path / "gw", make_config(), clock=clock) as srv, console_page(srv) as page:
        page.fill("input[name=username]", "zhang")
        page.fill("input[name=password]", "zhang")
        page.click("button[type=submit]")
        expect(page.locator("#status")).to_contain_text("live")
        first = page.evaluate("sessionStorage.getItem('gridgate.token')")
        clock.advance(901)  # the access token has expired; the session (12 h) has not
        page.reload()
        expect(page.locator("#who")).to_contain_text("zhang (officer)")
        expect(page.locator("#status")).to_contain_text("live")
        assert page.evaluate("sessionStorage.getItem('gridgate.token')") != first
        store = srv.gw.accounts.store
        assert len(store.sessions_of("zhang")) == 1
        page.click("#logout")
        expect(page.locator("#login")).to_be_visible()
        wait_for(lambda: not store.sessions_of("zhang"), what="the console's logout to end the session")
