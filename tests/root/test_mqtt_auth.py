"""``gridgate mqtt-auth``: its hashes against ``mosquitto_passwd``, its files, and a real Mosquitto enforcing them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collectors.mqtt import MqttCollector
from gateway.config import Config
from gateway.ingest.intake import Intake
from gateway.registry import Registry
from gateway.root.cli import main
from gateway.root.mqtt_auth import hash_password, verify_password, write_files
from tests.helpers import CH4, district, mqtt_device, until
from tests.peers import Mosquitto, free_port, need_binary

P = "gridgate/v1"
G1, G2 = "43090300100201", "43090300100301"  # district(): o1 and resp in g1 (e1), o2 in g2 (e2)
GATEWAY_PW = "the-gateway's-own"


def config(port: int = 1883, **mqtt: object) -> Config:
    return district([mqtt_device("e1", "d1", [CH4]), mqtt_device("e2", "d2", [CH4])],
                    mqtt={"url": f"mqtt://127.0.0.1:{port}", **mqtt})


def test_hashes_are_mosquitto_passwd_hashes(tmp_path: Path) -> None:
    binary = need_binary("mosquitto_passwd", "mosquitto")
    subprocess.run([binary, "-c", "-b", str(tmp_path / "pw"), "someone", "pa ss:wörd"], check=True)
    theirs = (tmp_path / "pw").read_text().strip().split(":", 1)[1]
    assert theirs.startswith("$7$101$")
    assert verify_password("pa ss:wörd", theirs) and not verify_password("pa ss:word", theirs)
    ours = hash_password("pa ss:wörd", salt=b"0123456789ab")
    assert ours.split("$")[:4] == theirs.split("$")[:3] + ["MDEyMzQ1Njc4OWFi"] and len(ours) == len(theirs)
    assert verify_password("pa ss:wörd", ours) and not verify_password("x", ours)
    assert not verify_password("x", "$6$c2FsdA==$aGFzaA==") and not verify_password("x", "plain")


def test_files_what_each_login_may_do_and_reruns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_file, out = tmp_path / "g.toml", tmp_path / "auth"
    cfg_file.write_text(CONFIG_TOML)
    assert main(["mqtt-auth", "-c", str(cfg_file), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"password_file {out / 'passwd'}\nacl_file {out / 'acl'}\n" in said and "allow_anonymous false" in said
    assert str(out / "credentials") in said and "set [mqtt] username and password" in said
    assert os.stat(out / "credentials").st_mode & 0o777 == 0o600
    acl = (out / "acl").read_text()
    for block in ACL_BLOCKS:
        assert block in acl
    passwd = dict(line.split(":", 1) for line in (out / "passwd").read_text().splitlines())
    shown = dict(line.split(" ", 1) for line in (out / "credentials").read_text().splitlines()
                 if not line.startswith("#"))
    assert set(passwd) == set(shown) == {"gateway", "ent.e1", "ent.e2", "officer.o1", "officer.o2",
                                         "officer.resp", "department.yjj", "department.fire"}
    assert all(verify_password(shown[n], passwd[n]) for n in passwd)

    assert main(["mqtt-auth", "-c", str(cfg_file), "--out", str(out)]) == 0  # a re-run keeps every password
    assert "0 new passwords, 8 kept" in capsys.readouterr().out
    assert dict(line.split(":", 1) for line in (out / "passwd").read_text().splitlines()) == passwd
    assert "ent.e1 " + shown["ent.e1"] in (out / "credentials").read_text()

    assert main(["mqtt-auth", "-c", str(cfg_file), "--out", str(out), "--rotate", "ent.e1"]) == 0
    rotated = dict(line.split(":", 1) for line in (out / "passwd").read_text().splitlines())
    assert {n for n in passwd if rotated[n] != passwd[n]} == {"ent.e1"}
    assert main(["mqtt-auth", "-c", str(cfg_file), "--out", str(out), "--rotate"]) == 0
    renewed = dict(line.split(":", 1) for line in (out / "passwd").read_text().splitlines())
    assert all(renewed[n] != rotated[n] for n in passwd)
    assert main(["mqtt-auth", "-c", str(cfg_file), "--out", str(out), "--rotate", "ent.nobody"]) == 2
    assert "ent.nobody" in capsys.readouterr().err


def test_the_gateway_password_comes_from_the_configuration(tmp_path: Path) -> None:
    written = write_files(config(username="gw", password=GATEWAY_PW), tmp_path)
    passwd = dict(line.split(":", 1) for line in written.passwd.read_text().splitlines())
    assert verify_password(GATEWAY_PW, passwd["gw"]) and "gateway" not in passwd
    assert GATEWAY_PW not in written.credentials.read_text()
    again = write_files(config(username="gw", password=GATEWAY_PW), tmp_path, rotate=[])
    assert dict(line.split(":", 1) for line in again.passwd.read_text().splitlines())["gw"] == passwd["gw"]
    with pytest.raises(ValueError, match="ent.e1"):
        write_files(config(username="ent.e1"), tmp_path)
    with pytest.raises(ValueError, match="prefix"):
        write_files(config(prefix="site/+/v1"), tmp_path)


CONFIG_TOML = """
[mqtt]
prefix = "gridgate/v1"
[[departments]]
id = "yjj"
name = "应急管理局"
[[departments]]
id = "fire"
name = "消防"
[[officers]]
id = "o1"
name = "One"
[[officers]]
id = "o2"
name = "Two"
[[officers]]
id = "resp"
name = "Responsible"
[[grids]]
id = "43090300100201"
name = "g1"
area = "430903001002"
officers = ["o1"]
responsible = "resp"
[[grids]]
id = "43090300100301"
name = "g2"
area = "430903001003"
officers = ["o2", "resp"]
[[enterprises]]
id = "e1"
name = "E1"
grid = "43090300100201"
lead_department = "yjj"
[[enterprises]]
id = "e2"
name = "E2"
grid = "43090300100301"
lead_department = "fire"
"""

ACL_BLOCKS = [
    f"""user gateway
topic read {P}/+/+/telemetry
topic read {P}/+/+/status
topic write {P}/+/+/errors
topic write {P}/alarms/+
topic write {P}/officers/+/alarms
topic write {P}/departments/+/alarms
""",
    f"""user ent.e1
topic write {P}/e1/+/telemetry
topic write {P}/e1/+/status
topic read {P}/e1/+/errors
""",
    f"""user officer.o1
topic read {P}/officers/o1/alarms
topic read {P}/alarms/{G1}

""",
    f"""user officer.resp
topic read {P}/officers/resp/alarms
topic read {P}/alarms/{G1}
topic read {P}/alarms/{G2}
""",
    f"""user department.fire
topic read {P}/departments/fire/alarms
""",
]


class Login:
    """A paho client logged in as one broker login: the broker's answers, and what it received."""

    def __init__(self, port: int, username: str | None, password: str | None = None) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.connack: object = None
        self.granted: list | None = None
        c = self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{username}-{time.time_ns()}",
                                      protocol=paho.MQTTv311)
        if username is not None:
            c.username_pw_set(username, password)
        c.on_connect = lambda _c, _u, _f, rc, _p: setattr(self, "connack", rc)
        c.on_subscribe = lambda _c, _u, _mid, rcs, _p: setattr(self, "granted", rcs)
        c.on_message = lambda _c, _u, m: self.received.append((m.topic, m.payload))
        c.connect("127.0.0.1", port)
        c.loop_start()

    async def connected(self) -> bool:
        await until(lambda: self.connack is not None, 5, "a CONNACK")
        return not self.connack.is_failure  # type: ignore[attr-defined]

    async def subscribe(self, *topics: str) -> list[bool]:
        self.granted = None
        self.client.subscribe([(t, 1) for t in topics])
        await until(lambda: self.granted is not None, 5, "a SUBACK")
        return [not r.is_failure for r in self.granted or []]

    def publish(self, topic: str, payload: object) -> None:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        self.client.publish(f"{P}/{topic}", body, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        # Break the cycle client -> callbacks -> self, so that paho's __del__ closes its socket pair at
        # once: a cycle is collected later, its sockets' finalizers perhaps first (ResourceWarning).
        self.client.on_connect = self.client.on_subscribe = self.client.on_message = None


@pytest.fixture
def guarded(tmp_path: Path):
    """A Mosquitto that admits only the logins of ``gridgate mqtt-auth`` and enforces their ACL;
    (broker, configuration, the passwords shown)."""
    port = free_port()
    cfg = config(port, username="gateway", password=GATEWAY_PW)
    written = write_files(cfg, tmp_path / "auth")
    shown = dict(line.split(" ", 1) for line in written.credentials.read_text().splitlines()
                 if not line.startswith("#"))
    (tmp_path / "mosquitto").mkdir()
    broker = Mosquitto(tmp_path / "mosquitto", port=port, extra_config=(
        f"allow_anonymous false\npassword_file {written.passwd}\nacl_file {written.acl}\n"))
    broker.start()
    yield broker, cfg, shown
    broker.stop()


def test_the_broker_refuses_strangers(guarded) -> None:
    broker, cfg, shown = guarded

    async def main() -> None:
        for who, pw in [(None, None), ("ent.e1", "wrong"), ("ent.e1", shown["ent.e2"]), ("nobody", "x")]:
            stranger = Login(broker.port, who, pw)
            assert not await stranger.connected(), who
            stranger.close()
        for who in shown:
            login = Login(broker.port, who, shown[who])
            assert await login.connected(), who
            login.close()
        wrong = cfg.model_copy(update={"mqtt": cfg.mqtt.model_copy(update={"password": "guessed"})})
        collector = MqttCollector(wrong.mqtt, Registry(wrong), Intake(), "gw-wrong", backoff=(0.1, 0.2))
        task = asyncio.create_task(collector.run())
        await asyncio.sleep(0.5)  # several attempts: each one's refusal is what the health says
        assert collector.health()["last_error"] == "broker refused the connection: Not authorized"
        assert not collector.connected
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_an_enterprise_publishes_only_as_itself(guarded) -> None:
    broker, cfg, shown = guarded

    async def main() -> None:
        intake = Intake()
        registry = Registry(cfg)
        collector = MqttCollector(cfg.mqtt, registry, intake, "gw-test")
        task = asyncio.create_task(collector.run())
        await until(lambda: collector.subscribed, 10, "the gateway's subscriptions")
        e1, e2 = Login(broker.port, "ent.e1", shown["ent.e1"]), Login(broker.port, "ent.e2", shown["ent.e2"])
        assert await e1.connected() and await e2.connected()
        await e1.subscribe(f"{P}/e2/+/errors")  # Mosquitto 2.0 grants it, and then delivers nothing
        e1.publish("e2/d2/telemetry", {"values": {"ch4": 55.0}})  # dropped by the broker
        e1.publish("e2/d2/status", b"offline")
        e1.publish("e1/d1/telemetry", {"values": {"ch4": 1.0}})
        batch = await asyncio.wait_for(intake.readings.get(), 10)
        assert batch.sensor.tolist() == [registry.sensor_index("e1/d1/ch4")] and batch.value.tolist() == [1.0]
        assert collector.messages == 1 and intake.rejects.total() == 0  # e2's came before it, or never
        assert await e2.subscribe(f"{P}/e2/+/errors") == [True]
        e2.publish("e2/d2/telemetry", {"values": {"nope": 1.0}})  # the gateway answers on e2's errors
        await until(lambda: e2.received, 5, "e2's answer")
        assert e2.received[0][0] == f"{P}/e2/d2/errors" and e1.received == []
        for c in (e1, e2):
            c.close()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_an_officer_reads_only_their_own_alarm_topics(guarded) -> None:
    broker, cfg, shown = guarded

    async def main() -> None:
        o1 = Login(broker.port, "officer.o1", shown["officer.o1"])
        yjj = Login(broker.port, "department.yjj", shown["department.yjj"])
        gateway = Login(broker.port, "gateway", GATEWAY_PW)
        assert await o1.connected() and await yjj.connected() and await gateway.connected()
        o1_all = Login(broker.port, "officer.o1", shown["officer.o1"])  # a second client: everything
        assert await o1_all.connected() and await o1_all.subscribe(f"{P}/#", "#") == [True, True]
        # Mosquitto 2.0 grants any subscription; the ACL decides what is delivered on it.
        assert await o1.subscribe(f"{P}/officers/o2/alarms", f"{P}/alarms/{G2}", f"{P}/departments/yjj/alarms",
                                  f"{P}/officers/o1/alarms", f"{P}/alarms/{G1}") == [True] * 5
        await yjj.subscribe(f"{P}/departments/fire/alarms", f"{P}/departments/yjj/alarms")
        others = ["officers/o2/alarms", f"alarms/{G2}", "departments/fire/alarms", "e1/d1/telemetry"]
        own = ["officers/o1/alarms", f"alarms/{G1}", "departments/yjj/alarms"]
        for topic in others + own:  # in order: what o1 or yjj may not read comes first
            gateway.publish(topic, {"id": topic})
        await until(lambda: len(o1.received) == 2 and len(o1_all.received) == 2 and len(yjj.received) == 1,
                    5, "their own alarms")
        assert [t for t, _ in o1.received] == [f"{P}/officers/o1/alarms", f"{P}/alarms/{G1}"]
        assert [t for t, _ in o1_all.received] == [f"{P}/officers/o1/alarms", f"{P}/alarms/{G1}"]
        assert [t for t, _ in yjj.received] == [f"{P}/departments/yjj/alarms"]
        o1.publish(f"alarms/{G1}", {"forged": True})  # an officer cannot publish alarms
        gateway.publish(f"alarms/{G1}", {"id": "last"})
        await until(lambda: len(o1.received) == 3, 5, "the last alarm")
        assert orjson.loads(o1.received[2][1]) == {"id": "last"}
        for c in (o1, o1_all, yjj, gateway):
            c.close()

    asyncio.run(main())


def test_logins_follow_the_registry_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An enterprise added through the API (the registry database) gets its broker login too."""
    import asyncio

    from gateway.config import load_config
    from gateway.register import edit
    from gateway.register.service import open_service

    cfg_file, out, data = tmp_path / "g.toml", tmp_path / "auth", tmp_path / "data"
    cfg_file.write_text(f'[gateway]\ndata_dir = "{data}"\n' + CONFIG_TOML)
    data.mkdir()
    service, registry, _ = open_service(data, load_config(cfg_file))
    new = {"id": "e3", "name": "新企业", "grid": registry.config.grids[0].id,
           "lead_department": registry.config.departments[0].id}
    asyncio.run(service.change(lambda items, retired: edit.put(items, "enterprises", "e3", new, set()), "admin"))
    service.store.close()
    assert main(["mqtt-auth", "-c", str(cfg_file), "--out", str(out)]) == 0
    capsys.readouterr()
    assert "ent.e3:" in (out / "passwd").read_text() and "topic write gridgate/v1/e3/+/telemetry" in (
        out / "acl").read_text()
