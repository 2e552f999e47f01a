"""Webhook notifiers: alarm events as HTTP POSTs to a generic JSON endpoint or a DingTalk/WeCom group robot.

The notifier reads its events from a feed (:mod:`alerts.notify.feed`; in the gateway the book's event log
after the webhook's own durable cursor, so a restart resumes where it stopped; ``offer`` is the
pipeline's hint, never waiting). ``run`` sends them in order, one request each (the event id in
``X-Gridgate-Event-Id`` and in the body: the idempotency key), confirms each to the feed once it was
delivered or refused for good, and keeps retrying the same event with exponential backoff and jitter
while the receiver is unreachable, times out, is rate limiting (429 with its Retry-After, or the
robots' rate-limit ``errcode``) or answers 5xx, so a receiver that is down gets every notification
when it comes back. Any other refusal (a 4xx, a robot ``errcode`` such as a bad signature) is
permanent: logged once, counted, written to the delivery log as failed, and the next event goes out.
Rendering a request (body, signature, headers) and judging a reply are pure functions of the event,
the secret and the injected clock, so the formats and the signatures are table-tested without a
network.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Literal
from urllib.parse import quote_plus

import httpx
import orjson

from alerts.model import AlarmEvent
from alerts.notify.feed import EventFeed, QueueFeed
from gateway.clock import Clock, SystemClock
from gateway.retry import Backoff, parse_retry_after

log = logging.getLogger(__name__)

Format = Literal["json", "dingtalk", "wecom"]
FORMATS: tuple[Format, ...] = ("json", "dingtalk", "wecom")

# China has kept UTC+8 without daylight saving since 1991: a fixed offset needs no tzdata.
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")

# The robots answer HTTP 200 with an errcode; these mean "too many messages, try later".
RATE_LIMIT_ERRCODES: dict[str, frozenset[int]] = {"dingtalk": frozenset({130101}), "wecom": frozenset({45009})}

LEVEL_ZH = {"high_high": "高高报", "high": "高报", "low": "低报", "low_low": "低低报", "fault": "故障",
            "offline": "离线", "stale": "数据中断", "data_loss": "数据丢失", "rate_of_change": "变化速率报警",
            "flood": "报警泛滥", "report": "群众举报", "maintenance": "设备检修"}
KIND_ZH = {"process": "气体报警", "fault": "传感器故障", "communication": "通信中断", "system": "系统报警",
           "report": "隐患举报"}
EVENT_ZH = {"raised": "新报警", "rose": "报警升级", "lowered": "报警降级", "cleared": "已恢复正常",
            "acknowledged": "已确认", "escalated": "超时升级", "shelved": "已搁置", "unshelved": "取消搁置",
            "suppressed": "已抑制", "unsuppressed": "取消抑制", "out_of_service": "停用检修",
            "returned_to_service": "恢复投用", "dispatched": "已派遣", "resolved": "已反馈处置结果",
            "closed": "已核查结案", "chattering": "频繁报警"}
STATE_ZH = {"normal": "正常", "unacknowledged": "未确认", "acknowledged": "已确认",
            "rtn_unacknowledged": "已恢复、未确认", "shelved": "已搁置", "suppressed": "已抑制",
            "out_of_service": "停用检修"}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One HTTP request, ready to send: the exact bytes that were signed."""

    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a reply means: ``delivered``, ``retry`` (same event again later) or ``failed`` (give up)."""

    outcome: Literal["delivered", "retry", "failed"]
    error: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One entry of the delivery log: how an event ended."""

    event_id: int
    status: Literal["delivered", "failed"]
    attempts: int
    delivered_at: int | None = None  # epoch ms
    error: str | None = None


# --- pure core: text, signatures, requests, verdicts ---------------------------------------------

def local_time(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:g}"


def markdown(event: AlarmEvent) -> tuple[str, str]:
    """The title and the markdown text an officer reads: what, where, how much, what state, when."""
    a = event.alarm
    level = LEVEL_ZH.get(a.level, a.level)
    what = EVENT_ZH.get(event.type, event.type)
    title = f"【{level}】{a.enterprise} {a.sensor_id} {what}"
    place = a.device if a.point is None else f"{a.device} / {a.point}"
    lines = [
        f"### 【{level}】{KIND_ZH.get(a.kind, a.kind)} · {what}",
        f"- **企业**：{a.enterprise}（网格 {a.grid}）",
        f"- **传感器**：{a.sensor_id}（{place}）",
        f"- **数值**：{_num(a.value)} {a.unit}（峰值 {_num(a.peak)} {a.unit}）".rstrip(),
        f"- **级别**：{level}",
        f"- **状态**：{STATE_ZH.get(a.state, a.state)}",
        f"- **事件**：{what}",
        f"- **时间**：{local_time(event.ts)}（北京时间）",
        f"- **报警时间**：{local_time(a.raised_at)}",
    ]
    if a.reason:
        lines.append(f"- **原因**：{a.reason}")
    if event.actor:
        lines.append(f"- **操作人**：{event.actor}" + (f"（{event.note}）" if event.note else ""))
    lines.append(f"- 报警编号 {a.id}，事件编号 {event.id}")
    return title, "\n".join(lines)


def json_signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over the exact raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's robot signature: base64(HMAC-SHA256(secret, "{timestamp}\\n{secret}")), not yet URL-encoded."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


def render(fmt: Format, event: AlarmEvent, url: str, secret: str | None, now_ms: int) -> Outgoing:
    """The request for one event in one format, signed at ``now_ms``."""
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if fmt == "json":
        body = event.to_json()
        headers |= {"X-Gridgate-Timestamp": str(now_ms), "X-Gridgate-Event-Id": str(event.id)}
        if secret is not None:
            headers["X-Gridgate-Signature"] = json_signature(secret, body)
        return Outgoing(url, body, headers)
    title, text = markdown(event)
    if fmt == "dingtalk":
        body = orjson.dumps({"msgtype": "markdown", "markdown": {"title": title, "text": text}})
        if secret is not None:
            url = _with_query(url, f"timestamp={now_ms}&sign={quote_plus(dingtalk_sign(secret, now_ms))}")
        return Outgoing(url, body, headers)
    if fmt == "wecom":
        return Outgoing(url, orjson.dumps({"msgtype": "markdown", "markdown": {"content": text}}), headers)
    raise ValueError(f"unknown webhook format {fmt!r}; expected one of {FORMATS}")


def judge(fmt: Format, status: int, headers: dict[str, str], body: bytes, now_s: float) -> Verdict:
    """What a reply means for the event. ``headers`` keys are lower case."""
    if status == 429:
        return Verdict("retry", "HTTP 429", parse_retry_after(headers.get("retry-after"), now_s))
    if status >= 500:
        return Verdict("retry", f"HTTP {status}")
    if not 200 <= status < 300:
        return Verdict("failed", f"HTTP {status}: {body[:200].decode(errors='replace')}")
    if fmt == "json":
        return Verdict("delivered")
    try:
        reply = orjson.loads(body)
        errcode = int(reply["errcode"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return Verdict("failed", f"unexpected reply: {body[:200].decode(errors='replace')}")
    if errcode == 0:
        return Verdict("delivered")
    error = f"errcode {errcode}: {reply.get('errmsg', '')}"
    if errcode in RATE_LIMIT_ERRCODES[fmt]:
        return Verdict("retry", error)
    return Verdict("failed", error)


# --- the component -------------------------------------------------------------------------------

@dataclass
class _Counters:
    delivered: int = 0
    failed: int = 0
    retries: int = 0
    last_error: str | None = None
    state: Literal["idle", "sending", "retrying"] = "idle"
    log: deque[Delivery] = field(default_factory=deque)


class WebhookNotifier:
    """Alarm events to one webhook; ``offer`` from the pipeline, ``run`` as a task."""

    def __init__(self, name: str, url: str, fmt: Format, *, secret: str | None = None, timeout: float = 5.0,
                 queue_size: int = 10_000, backoff: tuple[float, float] = (0.5, 60.0), clock: Clock | None = None,
                 log_size: int = 1000, feed: EventFeed | None = None) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"notifier {name}: unknown webhook format {fmt!r}; expected one of {FORMATS}")
        if httpx.URL(url).scheme not in ("http", "https"):
            raise ValueError(f"notifier {name}: webhook url must be http(s), got {url!r}")
        Backoff(*backoff)  # refuses a backoff that is not 0 < first <= cap, at construction
        self.name = name
        self.url = url
        self.fmt: Format = fmt
        self.secret = secret
        self.timeout = timeout
        self.backoff = backoff
        self.clock: Clock = clock or SystemClock()
        self.feed: EventFeed = feed if feed is not None else QueueFeed(queue_size)
        self._c = _Counters(log=deque(maxlen=log_size))
        self._failing = False

    @property
    def deliveries(self) -> list[Delivery]:
        """The delivery log, oldest first (the last ``log_size`` events that were delivered or failed)."""
        return list(self._c.log)

    def offer(self, events: list[AlarmEvent]) -> None:
        self.feed.offer(events)

    def lag(self) -> int:
        return self.feed.lag()

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            while True:
                for ev in await self.feed.take(100):
                    try:
                        await self._deliver(client, ev)
                    finally:
                        self._c.state = "idle"
                    self.feed.done(ev.id)

    async def _deliver(self, client: httpx.AsyncClient, ev: AlarmEvent) -> None:
        c = self._c
        backoff = Backoff(*self.backoff)
        attempts = 0
        while True:
            attempts += 1
            c.state = "sending" if attempts == 1 else "retrying"
            verdict = await self._attempt(client, ev)
            if verdict.outcome == "delivered":
                if self._failing:
                    log.info("webhook %s: delivering again after %s", self.name, c.last_error)
                    self._failing = False
                c.delivered += 1
                c.log.append(Delivery(ev.id, "delivered", attempts, delivered_at=self._now_ms()))
                return
            if verdict.outcome == "failed":
                log.error("webhook %s: event %s refused, not retried: %s", self.name, ev.id, verdict.error)
                c.failed += 1
                c.last_error = verdict.error
                c.log.append(Delivery(ev.id, "failed", attempts, error=verdict.error))
                return
            if not self._failing:  # log the change of state, not every retry of a long outage
                self._failing = True
                log.warning("webhook %s: event %s not delivered, retrying: %s", self.name, ev.id, verdict.error)
            c.retries += 1
            c.last_error = verdict.error
            await asyncio.sleep(verdict.retry_after if verdict.retry_after is not None else backoff.next())

    async def _attempt(self, client: httpx.AsyncClient, ev: AlarmEvent) -> Verdict:
        # Rendered per attempt: DingTalk refuses a timestamp more than an hour old.
        req = render(self.fmt, ev, self.url, self.secret, self._now_ms())
        try:
            reply = await client.post(req.url, content=req.body, headers=req.headers)
        except httpx.TimeoutException as exc:
            return Verdict("retry", f"timeout: {type(exc).__name__}")
        except httpx.TransportError as exc:
            return Verdict("retry", f"{type(exc).__name__}: {exc}")
        headers = {k.lower(): v for k, v in reply.headers.items()}
        return judge(self.fmt, reply.status_code, headers, reply.content, self.clock.now_ns() / 1e9)

    def _now_ms(self) -> int:
        return self.clock.now_ns() // 1_000_000

    def health(self) -> dict[str, object]:
        c = self._c
        return {"name": self.name, "format": self.fmt, "state": c.state, "delivered": c.delivered,
                "failed": c.failed, "retries": c.retries, "last_error": c.last_error, **self.feed.health()}

