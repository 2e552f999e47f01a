"""An MQTT sensor fleet: simulated devices that publish their scenario's readings to a broker.

One paho client per device, because the last will is per connection: each device connects with
``offline`` (retained, QoS 1) as its will on ``{prefix}/{ent}/{dev}/status``, publishes ``online``
retained, and then every ``interval`` seconds one telemetry message (QoS 1) with the values of its
Scenario at the time since the fleet started (the clock is injectable; ``publish_at(t)`` publishes
one round for a given time). A device in a dropout window publishes nothing. Leaving the context
publishes ``offline`` and disconnects. ``publish_load`` is the load mode: one client, M messages of
K readings (values encoded once, timestamps spliced in) as fast as the broker takes them, for the
benchmark's separate process.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config import Config, MqttDevice, load_config
from simulators.scenarios import SCENARIOS, Scenario


@dataclass(frozen=True, slots=True)
class FleetDevice:
    """A simulated MQTT device: its ids and its points as ``(key, kind)``."""

    enterprise: str
    id: str
    points: tuple[tuple[str, str], ...]

    @property
    def key(self) -> str:
        return f"{self.enterprise}/{self.id}"

    @classmethod
    def from_config(cls, cfg: Config, device: MqttDevice) -> FleetDevice:
        return cls(device.enterprise, device.id, tuple((p.key, p.kind) for p in cfg.device_points(device)))


def fleet_devices(cfg: Config, only: Sequence[str] = ()) -> list[FleetDevice]:
    """The MQTT devices of a configuration (or those named ``ent/dev`` in ``only``)."""
    devices = [FleetDevice.from_config(cfg, d) for d in cfg.devices if isinstance(d, MqttDevice)]
    if only:
        known = {d.key for d in devices}
        missing = [k for k in only if k not in known]
        if missing:
            raise ValueError(f"no MQTT device {', '.join(missing)} in the configuration")
        devices = [d for d in devices if d.key in only]
    return devices


def synthetic_devices(n: int, points: int = 10, enterprise: str = "load", kind: str = "temperature"
                      ) -> list[FleetDevice]:
    """``n`` devices ``{enterprise}/dev{i}`` with ``points`` points ``p{j}`` of one kind, for load."""
    pts = tuple((f"p{j}", kind) for j in range(points))
    return [FleetDevice(enterprise, f"dev{i}", pts) for i in range(n)]


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or (8883 if parts.scheme == "mqtts" else 1883)


def _client(url: str, client_id: str, username: str | None, password: str | None) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311)
    if username is not None:
        client.username_pw_set(username, password)
    if url.startswith("mqtts://"):
        client.tls_set()
    client.max_inflight_messages_set(100)
    return client


class MqttFleet:
    """Simulated devices publishing their scenarios; an async context manager (not reentrant)."""

    def __init__(self, url: str, prefix: str, devices: Sequence[FleetDevice],
                 scenarios: dict[str, Scenario] | None = None, interval: float = 1.0, *,
                 clock: Callable[[], float] | None = None, start_ms: int | None = None,
                 username: str | None = None, password: str | None = None,
                 client_prefix: str = "gridgate-sim") -> None:
        self.url = url
        self.prefix = prefix.rstrip("/")
        self.devices = list(devices)
        self.scenarios = scenarios or {}
        self.interval = interval
        self._clock = clock
        self.start_ms = start_ms
        self._auth = (username, password)
        self._client_prefix = client_prefix
        self._clients: dict[str, paho.Client] = {}
        self._last: dict[str, paho.MQTTMessageInfo] = {}
        self._task: asyncio.Task | None = None
        self._t0 = 0.0
        self.published = 0  # telemetry messages

    def scenario(self, device: FleetDevice) -> Scenario:
        return self.scenarios.get(device.key, Scenario("steady"))

    def elapsed(self) -> float:
        """Seconds since the fleet started, on the injected clock or the monotonic one."""
        return self._clock() if self._clock is not None else time.monotonic() - self._t0

    def epoch_ms(self, t: float) -> int:
        """The payload timestamp (epoch ms) of simulated time ``t``."""
        assert self.start_ms is not None, "the fleet has not started"
        return self.start_ms + round(t * 1000)

    def time_of(self, ts_ms: int) -> float:
        """The simulated time of a payload timestamp: ``Scenario.reading`` at it gives the value sent."""
        assert self.start_ms is not None, "the fleet has not started"
        return (ts_ms - self.start_ms) / 1000

    def payload(self, device: FleetDevice, t: float) -> bytes:
        t = round(t * 1000) / 1000  # the timestamp has ms resolution; the values follow it exactly
        sc = self.scenario(device)
        values: dict[str, object] = {}
        for key, kind in device.points:
            value, quality = sc.reading(kind, key, t)
            values[key] = value if quality == 0 else {"v": value, "q": quality.name.lower()}
        return orjson.dumps({"ts": self.epoch_ms(t), "values": values})

    def publish_at(self, t: float) -> int:
        """Publish one round for simulated time ``t``; returns the number of messages sent."""
        sent = 0
        for device in self.devices:
            if not self.scenario(device).answers(t):
                continue  # dropout: the device is silent, never steady
            topic = f"{self.prefix}/{device.enterprise}/{device.id}/telemetry"
            self._last[device.key] = self._clients[device.key].publish(topic, self.payload(device, t), qos=1)
            sent += 1
        self.published += sent
        return sent

    async def __aenter__(self) -> MqttFleet:
        if self._clients:
            raise RuntimeError("MqttFleet is not reentrant")
        loop = asyncio.get_running_loop()
        host, port = _host_port(self.url)
        waits = []
        for device in self.devices:
            client = _client(self.url, f"{self._client_prefix}-{device.enterprise}-{device.id}", *self._auth)
            status = f"{self.prefix}/{device.enterprise}/{device.id}/status"
            client.will_set(status, "offline", qos=1, retain=True)
            connected = loop.create_future()

            def on_connect(c: paho.Client, _u: object, _f: object, reason: object, _p: object,
                           fut: asyncio.Future = connected, topic: str = status) -> None:
                c.publish(topic, "online", qos=1, retain=True)  # again after every reconnect
                if not fut.done():
                    loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(reason))

            client.on_connect = on_connect
            client.connect_async(host, port, keepalive=30)
            client.loop_start()
            self._clients[device.key] = client
            waits.append(connected)
        try:
            async with asyncio.timeout(10):
                reasons = await asyncio.gather(*waits)
            refused = [str(r) for r in reasons if getattr(r, "is_failure", False)]
            if refused:
                raise ConnectionError(f"broker {self.url} refused the fleet: {refused[0]}")
        except BaseException:
            await self._close(graceful=False)
            raise
        self._t0 = time.monotonic()
        if self.start_ms is None:
            self.start_ms = time.time_ns() // 1_000_000
        if self._clock is None:
            self._task = asyncio.create_task(self._tick(), name="mqtt-fleet")
        return self

    async def _tick(self) -> None:
        for k in itertools.count():
            delay = self._t0 + k * self.interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.publish_at(self.elapsed())

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self._close(graceful=True)

    async def _close(self, graceful: bool) -> None:
        def close() -> None:
            infos = list(self._last.values())
            if graceful:
                for key, client in self._clients.items():
                    ent, dev = key.split("/")
                    infos.append(client.publish(f"{self.prefix}/{ent}/{dev}/status", "offline", 1, True))
            for info in infos:
                if info.rc == paho.MQTT_ERR_SUCCESS:
                    info.wait_for_publish(5)
            for client in self._clients.values():
                client.disconnect()
                client.loop_stop()

        await asyncio.to_thread(close)
        self._clients.clear()
        self._last.clear()


class LoadPayloads:
    """Load messages of ``readings`` readings: one object, or an array of objects when points run out.

    The values are encoded once (a few variants); each message only splices in its timestamps, so
    the publisher spends its CPU on MQTT, not on JSON.
    """

    def __init__(self, points: Sequence[str], readings: int, variants: int = 16) -> None:
        per = min(readings, len(points))
        self.objects = math.ceil(readings / len(points))
        sizes = [min(per, readings - j * per) for j in range(self.objects)]
        self.variants = [[orjson.dumps({points[i]: 20.0 + 0.1 * v + i * 0.01 for i in range(n)})
                          for n in sizes] for v in range(variants)]

    def __call__(self, i: int, ts_ms: int) -> bytes:
        """Message ``i``; its objects carry ``ts_ms``, ``ts_ms + 1``, ..."""
        values = self.variants[i % len(self.variants)]
        objs = [b'{"ts":%d,"values":%b}' % (ts_ms + j, v) for j, v in enumerate(values)]
        return objs[0] if self.objects == 1 else b"[" + b",".join(objs) + b"]"


def publish_load(url: str, prefix: str, enterprise: str, device: str, points: Sequence[str], messages: int,
                 readings_per_message: int, qos: int = 1, *, username: str | None = None,
                 password: str | None = None, window: int = 1000) -> dict:
    """Publish ``messages`` messages of ``readings_per_message`` readings, as fast as possible.

    Blocking. At most ``window`` messages are outstanding (unacknowledged at QoS 1, unsent at
    QoS 0), so memory stays flat. Timestamps are distinct per object (``now + i`` ms), so no
    reading overwrites another in a store. Returns counts, wall time and this process's CPU time.
    """
    if not points or readings_per_message < 1:
        raise ValueError("need at least one point and one reading per message")
    client = _client(url, f"gridgate-load-{enterprise}-{device}-{time.time_ns() % 10**9}", username, password)
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(0)
    host, port = _host_port(url)
    client.connect(host, port, keepalive=60)
    client.loop_start()
    topic = f"{prefix.rstrip('/')}/{enterprise}/{device}/telemetry"
    payloads = LoadPayloads(points, readings_per_message)
    ts0 = time.time_ns() // 1_000_000
    infos: list[paho.MQTTMessageInfo] = []
    size = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(messages):
        body = payloads(i, ts0 + i * payloads.objects)
        size += len(body)
        infos.append(client.publish(topic, body, qos=qos))
        if len(infos) >= window:
            infos[len(infos) // 2].wait_for_publish(60)
            infos = [m for m in infos if not m.is_published()]
    for info in infos:
        info.wait_for_publish(60)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    client.disconnect()
    client.loop_stop()
    return {"messages": messages, "readings": messages * readings_per_message, "bytes": size,
            "wall_s": wall, "cpu_s": cpu, "messages_per_s": messages / wall if wall else 0.0,
            "readings_per_s": messages * readings_per_message / wall if wall else 0.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``gridgate sim mqtt``."""
    parser.add_argument("-c", "--config", required=True, help="gridgate.toml with the MQTT devices")
    parser.add_argument("--scenario", default="steady", choices=SCENARIOS, help="what the devices play")
    parser.add_argument("--device", action="append", default=[], metavar="ENT/DEV",
                        help="only this device (repeatable; default: every MQTT device)")
    parser.add_argument("--seed", type=int, default=1, help="noise seed (default 1)")
    parser.add_argument("--for", dest="duration", type=float, default=None, metavar="SECONDS",
                        help="stop after this long (default: run until interrupted)")
    parser.add_argument("--url", default=None, help="broker url (default: [mqtt] url of the config)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between messages")
    parser.add_argument("--username", default=None, help="broker login (default: none)")
    parser.add_argument("--password", default=None, help="broker password (default: none)")


async def run_cli(args: argparse.Namespace) -> None:
    """``gridgate sim mqtt``: play a scenario on the configuration's MQTT devices."""
    cfg = load_config(args.config)
    devices = fleet_devices(cfg, args.device)
    if not devices:
        raise SystemExit("no MQTT devices to simulate in the configuration")
    scenarios = {d.key: Scenario(args.scenario, seed=args.seed) for d in devices}
    url = args.url or cfg.mqtt.url
    async with MqttFleet(url, cfg.mqtt.prefix, devices, scenarios, args.interval,
                         username=args.username, password=args.password) as fleet:
        print(f"publishing {args.scenario} for {len(devices)} device(s) to {url} every {args.interval:g} s",
              flush=True)
        if args.duration is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(args.duration)
        print(f"published {fleet.published} messages", flush=True)
