"""Webhook notifiers against a real local HTTP receiver that checks signatures as the real services do.

The pure core (texts, signatures, verdicts) is table-tested; the notifier itself runs against a
``ThreadingHTTPServer`` on a free port that recomputes the HMAC over the raw body (generic JSON) or
the DingTalk ``sign`` from the ``timestamp`` query parameter, and answers from a script.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import socket
import time

import orjson
import pytest

from alerts.model import Alarm, AlarmEvent
from alerts.notify.webhook import WebhookNotifier, dingtalk_sign, judge, markdown, render
from tests.helpers import until
from tests.peers import free_port

TS = 1_700_000_000_000  # 2023-11-15 06:13:20 in Shanghai
FAST = (0.01, 0.05)


def event(i: int, *, level: str = "high_high", type: str = "raised") -> AlarmEvent:
    alarm = Alarm(id=100 + i, sensor_id=f"S-{i}", enterprise="华东化工", device="GD-01", point="p1", grid="G-07",
                  kind="process", level=level, value=25.0, peak=31.5, unit="%LEL", state="unacknowledged",
                  raised_at=TS, updated_at=TS)
    return AlarmEvent(id=i, type=type, ts=TS, alarm=alarm, recipients=("officer-1",))


# --- the pure core -------------------------------------------------------------------------------

def test_json_request_signed_over_raw_body():
    out = render("json", event(1), "http://h/hook", "s3cret", TS)
    assert out.body == event(1).to_json()
    assert out.headers["X-Gridgate-Signature"] == "sha256=" + hmac.new(b"s3cret", out.body, hashlib.sha256).hexdigest()
    assert out.headers["X-Gridgate-Timestamp"] == str(TS)
    assert out.headers["X-Gridgate-Event-Id"] == "1"
    assert "X-Gridgate-Signature" not in render("json", event(1), "http://h/hook", None, TS).headers


@pytest.mark.parametrize(("url", "expected"), [
    ("https://oapi.dingtalk.com/robot/send?access_token=abc",
     "https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1700000000000"
     "&sign=ltBBey5eZrWKh1cPzFIdz3v3xpkc4Tjx4lLsPSHqdtA%3D"),
    ("http://h/robot", "http://h/robot?timestamp=1700000000000&sign=ltBBey5eZrWKh1cPzFIdz3v3xpkc4Tjx4lLsPSHqdtA%3D"),
])
def test_dingtalk_signature_known_vector(url, expected):
    assert dingtalk_sign("SEC000", TS) == "ltBBey5eZrWKh1cPzFIdz3v3xpkc4Tjx4lLsPSHqdtA="
    out = render("dingtalk", event(1), url, "SEC000", TS)
    assert out.url == expected
    body = orjson.loads(out.body)
    assert body["msgtype"] == "markdown" and set(body["markdown"]) == {"title", "text"}
    assert render("dingtalk", event(1), url, None, TS).url == url


def test_wecom_body_shape():
    out = render("wecom", event(1), "http://h/wecom?key=k", "ignored", TS)
    body = orjson.loads(out.body)
    assert out.url == "http://h/wecom?key=k"
    assert body == {"msgtype": "markdown", "markdown": {"content": markdown(event(1))[1]}}


def test_markdown_has_what_an_officer_needs():
    title, text = markdown(event(1))
    assert title == "【高高报】华东化工 S-1 新报警"
    for part in ("高高报", "华东化工", "G-07", "S-1", "GD-01 / p1", "25 %LEL", "31.5 %LEL", "未确认", "新报警",
                 "2023-11-15 06:13:20（北京时间）", "报警编号 101"):
        assert part in text, part
    _, cleared = markdown(event(2, level="high", type="cleared"))
    assert "已恢复正常" in cleared and "高报" in cleared


@pytest.mark.parametrize(("fmt", "status", "headers", "body", "outcome", "retry_after"), [
    ("json", 200, {}, b"", "delivered", None),
    ("json", 204, {}, b"", "delivered", None),
    ("json", 401, {}, b"bad signature", "failed", None),
    ("json", 404, {}, b"", "failed", None),
    ("json", 429, {"retry-after": "7"}, b"", "retry", 7.0),
    ("json", 429, {}, b"", "retry", None),
    ("json", 500, {}, b"", "retry", None),
    ("json", 503, {"retry-after": "3"}, b"", "retry", None),
    ("dingtalk", 200, {}, b'{"errcode":0,"errmsg":"ok"}', "delivered", None),
    ("dingtalk", 200, {}, b'{"errcode":130101,"errmsg":"send too fast"}', "retry", None),
    ("dingtalk", 200, {}, b'{"errcode":310000,"errmsg":"sign not match"}', "failed", None),
    ("dingtalk", 200, {}, b"<html>proxy</html>", "failed", None),
    ("dingtalk", 502, {}, b"", "retry", None),
    ("wecom", 200, {}, b'{"errcode":0,"errmsg":"ok"}', "delivered", None),
    ("wecom", 200, {}, b'{"errcode":45009,"errmsg":"api freq out of limit"}', "retry", None),
    ("wecom", 200, {}, b'{"errcode":93000,"errmsg":"invalid webhook url"}', "failed", None),
    ("wecom", 200, {}, b'{"errcode":130101}', "failed", None),  # DingTalk's code means nothing to WeCom
])
def test_judge(fmt, status, headers, body, outcome, retry_after):
    v = judge(fmt, status, headers, body, TS / 1000)
    assert (v.outcome, v.retry_after) == (outcome, retry_after)
    assert (v.error is None) == (outcome == "delivered")


def test_constructor_refuses_bad_settings():
    with pytest.raises(ValueError, match="format"):
        WebhookNotifier("n", "http://h/", "slack")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="http"):
        WebhookNotifier("n", "ftp://h/", "json")
    with pytest.raises(ValueError, match="backoff"):
        WebhookNotifier("n", "http://h/", "json", backoff=(2.0, 1.0))


@contextlib.asynccontextmanager
async def running(*notifiers: WebhookNotifier):
    tasks = [asyncio.create_task(n.run()) for n in notifiers]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t


def test_json_delivered_and_verified(receivers):
    rx = receivers("json", "s3cret").start()

    async def main() -> WebhookNotifier:
        n = WebhookNotifier("ops", rx.url, "json", secret="s3cret", backoff=FAST)
        async with running(n):
            n.offer([event(1), event(2), event(3)])
            await until(lambda: n.health()["delivered"] == 3, what="three deliveries")
        return n

    n = asyncio.run(main())
    assert rx.ids() == [1, 2, 3]
    assert all(r.verified for r in rx.got)
    assert [r.json for r in rx.got] == [event(i).to_dict() for i in (1, 2, 3)]
    assert [(d.event_id, d.status, d.attempts) for d in n.deliveries] == [(i, "delivered", 1) for i in (1, 2, 3)]
    assert all(d.delivered_at for d in n.deliveries)
    h = n.health()
    assert (h["queued"], h["failed"], h["dropped"], h["retries"], h["last_error"], h["state"]) == \
        (0, 0, 0, 0, None, "idle")


def test_wrong_secret_is_permanent_and_the_next_event_still_goes(receivers, caplog):
    rx = receivers("json", "the-right-one").start()

    async def main() -> WebhookNotifier:
        n = WebhookNotifier("ops", rx.url, "json", secret="a-wrong-one", backoff=FAST)
        async with running(n):
            n.offer([event(1)])
            await until(lambda: n.health()["failed"] == 1, what="the refusal")
            rx.secret = "a-wrong-one"  # the receiver's operator fixes the secret
            n.offer([event(2)])
            await until(lambda: n.health()["delivered"] == 1, what="the next event")
        return n

    with caplog.at_level(logging.WARNING, logger="alerts.notify.webhook"):
        n = asyncio.run(main())
    assert [r.verified for r in rx.got] == [False, True]  # refused once, never retried
    assert [(d.event_id, d.status, d.attempts) for d in n.deliveries] == [(1, "failed", 1), (2, "delivered", 1)]
    assert "401" in (n.deliveries[0].error or "")
    assert n.health()["retries"] == 0
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


def test_dingtalk_signed_rate_limit_retried_bad_sign_permanent(receivers):
    rx = receivers("dingtalk", "SECabc").start()
    rx.script.append((200, {}, b'{"errcode":130101,"errmsg":"send too fast"}'))

    async def main() -> tuple[WebhookNotifier, WebhookNotifier]:
        good = WebhookNotifier("dt", rx.url, "dingtalk", secret="SECabc", backoff=FAST)
        bad = WebhookNotifier("dt-bad", rx.url, "dingtalk", secret="SECxyz", backoff=FAST)
        async with running(good, bad):
            good.offer([event(1)])
            await until(lambda: good.health()["delivered"] == 1, what="the retried delivery")
            bad.offer([event(2)])
            await until(lambda: bad.health()["failed"] == 1, what="the refused signature")
        return good, bad

    good, bad = asyncio.run(main())
    assert [r.verified for r in rx.got] == [True, True, False]
    for r in rx.got:
        assert r.path == "/hook" and r.query["access_token"] == ["tok"]
        assert r.json["msgtype"] == "markdown" and set(r.json["markdown"]) == {"title", "text"}
        assert "华东化工" in r.json["markdown"]["text"]
    assert good.health()["retries"] == 1 and good.deliveries[0].attempts == 2
    assert "310000" in (bad.deliveries[0].error or "") and bad.health()["retries"] == 0


def test_wecom_shape_and_errcodes(receivers):
    rx = receivers("wecom").start()
    rx.script += [(200, {}, b'{"errcode":45009,"errmsg":"api freq out of limit"}'),
                  (200, {}, b'{"errcode":0,"errmsg":"ok"}'),
                  (200, {}, b'{"errcode":93000,"errmsg":"invalid webhook url"}')]

    async def main() -> WebhookNotifier:
        n = WebhookNotifier("wc", rx.url, "wecom", backoff=FAST)
        async with running(n):
            n.offer([event(1), event(2), event(3)])
            await until(lambda: len(n.deliveries) == 3, what="three outcomes")
        return n

    n = asyncio.run(main())
    assert [(d.event_id, d.status, d.attempts) for d in n.deliveries] == \
        [(1, "delivered", 2), (2, "failed", 1), (3, "delivered", 1)]
    assert [r.json["markdown"]["content"] for r in rx.got] == [markdown(event(i))[1] for i in (1, 1, 2, 3)]
    assert all(set(r.json) == {"msgtype", "markdown"} for r in rx.got)


def test_receiver_down_then_up_gets_everything_in_order_once(receivers, caplog):
    caplog.set_level(logging.INFO, logger="alerts.notify.webhook")
    rx = receivers("json", "s3cret", port=free_port())  # not started: the port is closed

    async def main() -> WebhookNotifier:
        n = WebhookNotifier("ops", rx.url, "json", secret="s3cret", backoff=(0.01, 0.1))
        async with running(n):
            n.offer([event(1), event(2)])
            await until(lambda: n.health()["retries"] >= 3, what="retries against a closed port")
            n.offer([event(3), event(4), event(5)])
            h = n.health()
            assert (h["delivered"], h["queued"], h["state"]) == (0, 5, "retrying")
            assert "ConnectError" in str(h["last_error"])
            rx.start()
            await until(lambda: n.health()["delivered"] == 5, what="delivery after the receiver came back")
        return n

    n = asyncio.run(main())
    assert rx.ids() == [1, 2, 3, 4, 5]
    assert all(r.verified for r in rx.got)
    assert [d.event_id for d in n.deliveries] == [1, 2, 3, 4, 5]
    assert n.deliveries[0].attempts > 3 and all(d.attempts == 1 for d in n.deliveries[1:])
    assert n.health()["state"] == "idle" and "ConnectError" in str(n.health()["last_error"])  # kept, as MQTT's
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]  # the outage and the recovery, no repeats


def test_429_retry_after_is_honoured(receivers):
    rx = receivers("json").start()
    rx.script.append((429, {"Retry-After": "1"}, b"slow down"))

    async def main() -> WebhookNotifier:
        n = WebhookNotifier("ops", rx.url, "json", backoff=FAST)
        async with running(n):
            n.offer([event(1)])
            await until(lambda: n.health()["delivered"] == 1, what="delivery after Retry-After")
        return n

    n = asyncio.run(main())
    assert rx.ids() == [1, 1]
    assert rx.got[1].at - rx.got[0].at >= 0.95  # the backoff alone would have waited at most 0.01 s
    assert n.health()["retries"] == 1 and n.deliveries[0].attempts == 2


def test_hanging_receiver_blocks_neither_offer_nor_another_notifier(receivers):
    rx = receivers("json", "s3cret").start()
    with socket.socket() as hang:  # accepts connections in its backlog and never answers
        hang.bind(("127.0.0.1", 0))
        hang.listen(8)
        hang_url = f"http://127.0.0.1:{hang.getsockname()[1]}/hook"

        async def main() -> tuple[WebhookNotifier, WebhookNotifier, float]:
            stuck = WebhookNotifier("stuck", hang_url, "json", timeout=0.2, queue_size=50, backoff=FAST)
            fine = WebhookNotifier("fine", rx.url, "json", secret="s3cret", backoff=FAST)
            async with running(stuck, fine):
                stuck.offer([event(0)])
                await until(lambda: stuck.health()["retries"] >= 1, what="the first timeout")
                batch = [event(i) for i in range(1, 201)]
                t0 = time.perf_counter()
                stuck.offer(batch)
                fine.offer(batch)
                offered = time.perf_counter() - t0
                await until(lambda: fine.health()["delivered"] == 200, 15, "the working receiver's deliveries")
                h = stuck.health()
                assert (h["delivered"], h["queued"], h["dropped"], h["state"]) == (0, 51, 150, "retrying")
            return stuck, fine, offered

        stuck, fine, offered = asyncio.run(main())
    assert offered < 0.1
    assert "timeout" in str(stuck.health()["last_error"])
    assert rx.ids() == list(range(1, 201))
