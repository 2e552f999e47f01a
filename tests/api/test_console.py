"""The officer console in headless Chromium (Debian `chromium`): logging in, the live alarm list on a phone
and a desktop, sound and notification switches, Chinese and English, the favicon, the offline API docs,
renewing an expired access token, and logging out. The whole officer-to-department flow and every view
are in test_console_views.py, which uses the helpers here.

Screenshots go to ``tests/artifacts/console/`` (not committed): ``NAME-390.png`` and ``NAME-1366.png``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from gateway.clock import ManualClock
from tests.helpers import wait_for
from tests.peers import need_binary
from tests.server import ApiServer, make_config

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required"]
PHONE, DESKTOP = (390, 844), (1366, 800)
SIZES = pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"


@contextmanager
def browser() -> Iterator[Browser]:
    chromium = need_binary("chromium", "chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


@contextmanager
def console_page(srv: ApiServer, size: tuple[int, int] = DESKTOP, b: Browser | None = None,
                 notifications: bool = False) -> Iterator[Page]:
    """A page of headless Chromium on the console of ``srv``; on leaving it, nothing was refused by the
    Content-Security-Policy, no script failed, and no request of the page got a 404 or a 5xx."""
    with (browser() if b is None else _given(b)) as br:
        context = br.new_context(viewport={"width": size[0], "height": size[1]},
                                 permissions=["notifications"] if notifications else [])
        page = context.new_page()
        refused: list[str] = []
        page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        page.on("pageerror", lambda e: refused.append(f"script error: {e}"))
        page.on("response", lambda r: refused.append(f"{r.status} {r.url}") if r.status == 404 or r.status >= 500
                else None)
        page.goto(f"http://127.0.0.1:{srv.port}/")
        try:
            yield page
            assert refused == []
        finally:
            context.close()


@contextmanager
def _given(b: Browser) -> Iterator[Browser]:
    yield b


def log_in(page: Page, user: str, password: str | None = None) -> None:
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password or user)
    page.click("#login button[type=submit]")
    expect(page.locator("#status")).to_have_class("status up")


def fits(page: Page) -> None:
    """The page is never wider than the viewport (no sideways scrolling on a phone)."""
    wide, inner = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert wide <= inner, f"the page is {wide} px wide in a {inner} px viewport"


def shot(page: Page, name: str) -> None:
    """A full-page screenshot kept as a test artifact, named by view and viewport width."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    fits(page)
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header where it belongs in a full-page picture
    page.screenshot(path=str(ARTIFACTS / f"{name}-{page.viewport_size['width']}.png"), full_page=True)


def card(page: Page, alarm_id: int):  # noqa: ANN201 - a Playwright locator
    return page.locator(f"tr.alarm[data-id='{alarm_id}']")


@SIZES
def test_the_list_shows_a_live_alarm_by_name_within_the_viewport(server: ApiServer, size: tuple[int, int]) -> None:
    srv = server
    with console_page(srv, size) as page:
        shot(page, "login")
        page.fill("input[name=username]", "zhang")
        page.fill("input[name=password]", "wrong")
        page.click("#login button[type=submit]")
        expect(page.locator("#login-error")).to_contain_text("用户名或密码错误")
        log_in(page, "zhang")
        expect(page.locator("#who")).to_contain_text("zhang · 网格员")
        # an alarm in zhang's grid arrives live; one in another grid never shows
        srv.raise_alarm("shimen/gas/ch4", 60.0)
        high = srv.raise_alarm("hengyuan/gas/ch4b", 30.0)
        row = card(page, high["id"])
        expect(row).to_contain_text("恒源化工")
        expect(row.locator(".c-level")).to_have_text("一级报警 high")
        expect(row.locator(".c-state")).to_contain_text("未确认")
        top = srv.raise_alarm("hengyuan/gas/ch4", 60.0)  # high-high: high priority, on top
        expect(page.locator("tr.alarm").first).to_have_attribute("data-id", str(top["id"]))
        expect(page.locator("tr.alarm").first.locator(".c-level")).to_have_text("二级报警 high-high")
        assert page.locator("tr.alarm").count() == 2
        expect(page.locator("tr.alarm").first.locator(".c-peak")).to_contain_text("60 %LEL")
        fits(page)
        layout = page.evaluate("getComputedStyle(document.querySelector('tr.alarm')).display")
        assert layout == ("grid" if size == PHONE else "table-row")  # cards on a phone, a table on a desktop
        shot(page, "alarms")


def test_sound_and_notification_for_a_new_high_priority_alarm_are_switchable(server: ApiServer) -> None:
    srv = server
    with console_page(srv, PHONE, notifications=True) as page:
        log_in(page, "zhang")
        expect(page.locator("#opt-sound")).to_be_checked()  # sound on by default, notifications asked for
        page.check("#opt-notify")
        srv.raise_alarm("hengyuan/gas/ch4b", 30.0)  # high: medium priority, no sound
        srv.raise_alarm("hengyuan/gas/ch4", 60.0)  # high-high: high priority
        expect(page.locator("body")).to_have_attribute("data-beeps", "1")
        expect(page.locator("body")).to_have_attribute("data-notified", "1")
        page.uncheck("#opt-sound")
        page.reload()  # the switches are kept in localStorage
        expect(page.locator("#opt-sound")).not_to_be_checked()
        expect(page.locator("#opt-notify")).to_be_checked()
        srv.raise_alarm("hengyuan/gas/ch4c", 60.0)
        expect(page.locator("body")).to_have_attribute("data-alerts", "1")
        assert page.get_attribute("body", "data-beeps") is None


def test_english_is_a_click_away_and_kept(server: ApiServer) -> None:
    srv = server
    alarm = srv.raise_alarm("hengyuan/gas/ch4", 60.0)
    with console_page(srv, PHONE) as page:
        log_in(page, "zhang")
        expect(page.locator("#nav a[data-view=alarms]")).to_have_text("报警")
        page.click("#lang")
        expect(page.locator("#nav a[data-view=alarms]")).to_have_text("Alarms")
        expect(card(page, alarm["id"]).locator(".c-level")).to_have_text("second-level (high-high)")
        page.reload()
        expect(page.locator("#nav a[data-view=grids]")).to_have_text("Grids")
        assert page.evaluate("document.documentElement.lang") == "en"
        shot(page, "alarms-english")
        page.click("#lang")
        expect(page.locator("#nav a[data-view=grids]")).to_have_text("网格")


def test_favicon_and_the_api_docs_come_from_the_gateway(server: ApiServer) -> None:
    srv = server
    root = f"http://127.0.0.1:{srv.port}"
    icon = httpx.get(f"{root}/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert httpx.get(f"{root}/docs").headers["location"] == "/api/v1/docs"
    outside: list[str] = []
    with console_page(srv, DESKTOP) as page:
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(root) else None)
        page.goto(f"{root}/api/v1/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("gridgate")
        expect(page.locator(".opblock-summary-path").first).to_be_visible()
        shot(page, "api-docs")
    assert outside == []  # Swagger UI from the package: nothing from a CDN


def test_the_console_renews_its_token_and_logs_out(tmp_path: Path) -> None:
    clock = ManualClock(time.time_ns())
    with ApiServer(tmp_path / "gw", make_config(), clock=clock) as srv, console_page(srv) as page:
        log_in(page, "zhang")
        first = page.evaluate("sessionStorage.getItem('gridgate.token')")
        clock.advance(901)  # the access token has expired; the session (12 h) has not
        page.reload()
        expect(page.locator("#who")).to_contain_text("zhang")
        expect(page.locator("#status")).to_have_class("status up")
        assert page.evaluate("sessionStorage.getItem('gridgate.token')") != first
        store = srv.gw.accounts.store
        assert len(store.sessions_of("zhang")) == 1
        page.click("#logout")
        expect(page.locator("#login")).to_be_visible()
        wait_for(lambda: not store.sessions_of("zhang"), what="the console's logout to end the session")
