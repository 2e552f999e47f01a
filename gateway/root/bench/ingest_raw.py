"""The load side of ``gridgate bench ingest``, and the reference ceilings to compare it with.

``publish_in_subprocess`` runs :func:`simulators.mqtt_fleet.publish_load` in a spawned process (so
the publisher's CPU is not the gateway's) and returns its counts, wall time and CPU seconds. The
gateway side (collector → detector → store) is the benchmark's other half. For the ratios the
performance budget asks for, ``raw_ceiling`` measures plain paho → broker → paho on this machine,
and ``collector_rate`` the MQTT collector alone (intake drained as fast as it fills); both with
the same subprocess publisher. ``python -m gateway.root.bench.ingest_raw --url mqtt://...`` prints all three.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config import Config, parse_config
from gateway.ingest.intake import Intake
from gateway.registry import Registry
from simulators.mqtt_fleet import publish_load


def _spawn(url: str, prefix: str, enterprise: str, device: str, points: Sequence[str], messages: int,
           readings_per_message: int, qos: int) -> tuple[ProcessPoolExecutor, Future]:
    # spawn, not fork: the parent runs threads (paho, asyncio's executor) that fork would copy mid-step
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    fut = pool.submit(publish_load, url, prefix, enterprise, device, list(points), messages,
                      readings_per_message, qos)
    return pool, fut


def publish_in_subprocess(url: str, prefix: str, enterprise: str, device: str, points: Sequence[str],
                          messages: int, readings_per_message: int, qos: int = 1) -> dict:
    """Publish M messages of K readings from a separate process; blocks until all are acknowledged.

    Returns ``messages``, ``readings``, ``bytes``, ``wall_s`` (first publish to last PUBACK),
    ``cpu_s`` (the publisher process), ``messages_per_s`` and ``readings_per_s``. Call it from a
    thread (``asyncio.to_thread``) when the gateway runs in the same process.
    """
    pool, fut = _spawn(url, prefix, enterprise, device, points, messages, readings_per_message, qos)
    try:
        return fut.result()
    finally:
        pool.shutdown()


def load_config(url: str, points: int, prefix: str = "gridgate/v1", enterprise: str = "load",
                device: str = "dev0") -> Config:
    """A configuration with one MQTT device of ``points`` temperature points ``p0..``, for load."""
    return parse_config({
        "mqtt": {"url": url, "prefix": prefix, "max_payload": 1 << 20},
        "departments": [{"id": "yjj", "name": "load"}],
        "officers": [{"id": "o1", "name": "load"}],
        "grids": [{"id": "g1", "name": "load", "area": "4309", "officers": ["o1"]}],
        "enterprises": [{"id": enterprise, "name": "load", "grid": "g1", "lead_department": "yjj"}],
        "devices": [{"enterprise": enterprise, "id": device, "protocol": "mqtt",
                     "points": [{"key": f"p{j}", "kind": "temperature"} for j in range(points)]}],
    })


def raw_ceiling(url: str, messages: int, readings_per_message: int, qos: int = 1,
                prefix: str = "gridgate/v1") -> dict:
    """Plain paho subscriber (auto-ack, counting only) fed by the subprocess publisher."""
    parts = urlsplit(url)
    done, subscribed = threading.Event(), threading.Event()
    seen = {"n": 0, "first": 0.0, "last": 0.0}

    def on_message(c: paho.Client, u: object, m: paho.MQTTMessage) -> None:
        now = time.perf_counter()
        if seen["n"] == 0:
            seen["first"] = now
        seen["n"] += 1
        seen["last"] = now
        if seen["n"] >= messages:
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{time.time_ns()}")
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.subscribe(f"{prefix}/+/+/telemetry", qos)
    client.loop_start()
    subscribed.wait(10)
    points = [f"p{j}" for j in range(readings_per_message)]
    cpu0 = time.process_time()
    pool, fut = _spawn(url, prefix, "load", "dev0", points, messages, readings_per_message, qos)
    try:
        pub = fut.result()
        done.wait(120)
    finally:
        pool.shutdown()
    cpu = time.process_time() - cpu0
    client.disconnect()
    client.loop_stop()
    wall = seen["last"] - seen["first"]
    return {"received": seen["n"], "wall_s": wall, "cpu_s": cpu, "messages_per_s": seen["n"] / wall,
            "readings_per_s": seen["n"] * readings_per_message / wall, "publisher": pub}


async def _collector_rate(url: str, messages: int, readings_per_message: int, qos: int) -> dict:
    from collectors.mqtt import MqttCollector

    cfg = load_config(url, readings_per_message)
    intake = Intake()
    collector = MqttCollector(cfg.mqtt, Registry(cfg), intake, f"bench-{time.time_ns()}")
    task = asyncio.create_task(collector.run())
    while not collector.subscribed:
        await asyncio.sleep(0.01)
    total, batches, first, last = messages * readings_per_message, 0, 0.0, 0.0
    cpu0 = time.process_time()
    points = [f"p{j}" for j in range(readings_per_message)]
    publisher = asyncio.create_task(asyncio.to_thread(
        publish_in_subprocess, url, cfg.mqtt.prefix, "load", "dev0", points, messages, readings_per_message,
        qos))
    got = 0
    while got < total:
        getter = asyncio.ensure_future(intake.readings.get())
        await asyncio.wait({getter, publisher}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if not getter.done():
            getter.cancel()
            if publisher.done():
                publisher.result()  # the publisher failed: raise its error
                continue  # it finished: wait for the last readings
            raise TimeoutError(f"no readings for 60 s ({got} of {total})")
        batch = getter.result()
        last = time.perf_counter()
        first = first or last
        got += len(batch)
        batches += 1
    cpu = time.process_time() - cpu0
    pub = await publisher
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    wall = last - first
    return {"readings": got, "batches": batches, "wall_s": wall, "cpu_s": cpu,
            "messages_per_s": messages / wall, "readings_per_s": got / wall, "publisher": pub}


def collector_rate(url: str, messages: int, readings_per_message: int, qos: int = 1) -> dict:
    """The MQTT collector alone: subprocess publisher → broker → collector → intake (drained)."""
    return asyncio.run(_collector_rate(url, messages, readings_per_message, qos))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="MQTT ingest ceilings: raw paho vs the collector")
    parser.add_argument("--url", required=True)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--readings", type=int, default=100, help="readings per message")
    parser.add_argument("--qos", type=int, default=1, choices=(0, 1))
    args = parser.parse_args(argv)
    for name, fn in (("raw paho", raw_ceiling), ("collector", collector_rate)):
        r = fn(args.url, args.messages, args.readings, args.qos)
        p = r["publisher"]
        print(f"{name:10s} {r['messages_per_s']:>9,.0f} msg/s {r['readings_per_s']:>11,.0f} readings/s"
              f"  subscriber cpu {r['cpu_s']:.2f} s / wall {r['wall_s']:.2f} s"
              f"  (publisher {p['messages_per_s']:,.0f} msg/s, cpu {p['cpu_s']:.2f} s)", flush=True)


if __name__ == "__main__":
    main()
