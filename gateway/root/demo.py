"""``gridgate demo``: a simulated district, an embedded broker, the gateway on SQLite, and the API.

Everything runs in one process and one event loop: the amqtt broker (unless ``--mqtt-url``), the
Modbus farm and the MQTT fleet of :mod:`simulators.district`, the gateway, and uvicorn serving the
API and the officer console. It prints the address and the logins; with ``--for SECONDS`` it stops
by itself and prints a one-line JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from gateway.config import parse_config
from gateway.root.runtime import Gateway
from simulators.brokers import free_port, start_amqtt
from simulators.district import ENTERPRISES, LEAK_DEVICE, demo_logins, district_config, district_scenarios


def _users() -> list[dict[str, Any]]:
    # Cheap argon2 parameters: these are well-known demo passwords, and start-up should be quick.
    ph = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    return [{"username": u, "password_hash": ph.hash(pw), "role": role, **acts}
            for u, pw, role, acts in demo_logins()]


def summary(gw: Gateway) -> dict[str, Any]:
    """The one-line result of a timed demo run."""
    notifier = gw.notifiers.get("mqtt")
    return {
        "readings_stored": gw.stored,
        "readings_evaluated": gw.evaluated,
        "rejected": gw.intake.rejects.total(),
        "alarms_raised": gw.book.raised,
        "events_delivered": gw.hub.delivered + (notifier.acked if notifier else 0),
        "live_events_delivered": gw.hub.delivered,
        "mqtt_alarm_messages_acked": notifier.acked if notifier else 0,
    }


async def run_demo(args: argparse.Namespace) -> int:
    # amqtt logs every session step at INFO; keep the demo's output to what an operator reads.
    for noisy in ("amqtt", "transitions", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from api.server import serve_api
    from simulators.modbus_farm import ModbusFarm
    from simulators.mqtt_fleet import MqttFleet, fleet_devices

    temp = None
    if args.data_dir:
        data_dir = Path(args.data_dir)
    else:
        temp = tempfile.mkdtemp(prefix="gridgate-demo-")
        data_dir = Path(temp)
    broker = None
    if args.mqtt_url:
        mqtt_url = args.mqtt_url
    else:
        mqtt_port = free_port()
        broker = await start_amqtt(mqtt_port)
        mqtt_url = f"mqtt://127.0.0.1:{mqtt_port}"
    ports = [free_port() for _ in ENTERPRISES]
    cfg = parse_config(district_config(mqtt_url, ports, _users(), str(data_dir), f"{args.host}:{args.port}"))
    gw = Gateway(cfg, data_dir=data_dir)
    scenarios = district_scenarios()
    modbus_ids = {d.device_id for d in gw.registry.devices_of("modbus")}
    farm = ModbusFarm(gw.registry, {k: v for k, v in scenarios.items() if k in modbus_ids})
    fleet = MqttFleet(mqtt_url, cfg.mqtt.prefix, fleet_devices(cfg),
                      {k: v for k, v in scenarios.items() if k not in modbus_ids})
    api_started = asyncio.Event()

    async def api(g: Gateway) -> None:
        await serve_api(g, args.host, args.port, started=api_started)

    try:
        async with farm, fleet:
            runner = asyncio.create_task(gw.run(api=api))
            waiter = asyncio.create_task(api_started.wait())
            done, _ = await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if runner in done:
                runner.result()  # the gateway failed to start: raise its error
            _banner(args, mqtt_url, data_dir, len(gw.registry))
            try:
                if args.duration is not None:
                    await asyncio.sleep(args.duration)
                else:
                    await runner
            finally:
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
    finally:
        if broker is not None:
            await broker.shutdown()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    if args.duration is not None:
        print(json.dumps(summary(gw), ensure_ascii=False), flush=True)
    return 0


def _banner(args: argparse.Namespace, mqtt_url: str, data_dir: Path, sensors: int) -> None:
    url = f"http://{args.host}:{args.port}"
    lines = [
        f"gridgate demo: {len(ENTERPRISES)} enterprises, {sensors} sensors, 3 grids",
        f"  console and API  {url}/   (API under {url}/api/v1, docs at {url}/api/v1/docs)",
        f"  MQTT broker      {mqtt_url}" + ("" if args.mqtt_url else "  (embedded amqtt)"),
        f"  data             {data_dir}",
        "  logins           admin/admin, officer1/officer1 (grid 1), officer2/officer2, officer3/officer3,"
        " chief/chief (responsible), departments yjj/yjj, fire/fire, scj/scj",
        "  alarms           unacknowledged high-high escalates to chief after 20 s, the lead department after"
        " 40 s; in the console: ack, dispatch, shelve, close",
        f"  scenario         gas leak at {LEAK_DEVICE} (grid 1) from t=10 s, high-high from about 21 s to 79 s,"
        " gone by 86 s; a spike at t=20 s that the on-delay swallows; an MQTT dropout in grid 3 from t=45 s",
    ]
    print("\n".join(lines), flush=True)
    sys.stdout.flush()
