"""The gateway's broker connection over TLS (``mqtts://``): a CA and certificates made by the test with
``openssl``, Mosquitto with a TLS listener and one that requires a client certificate."""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from alerts.notify.mqtt import MqttNotifier
from collectors.mqtt import MqttCollector
from gateway.config import Config, MqttSection
from gateway.errors import ConfigError
from gateway.ingest.intake import Intake
from gateway.registry import Registry
from gateway.tls import client_context
from tests.helpers import CH4, district, mqtt_device, until
from tests.peers import Mosquitto, free_port, need_binary

# paho 2.2 leaves the socket of a failed TLS handshake to the garbage collector, which warns.
paho_drops_failed_tls_sockets = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <ssl.SSLSocket:pytest.PytestUnraisableExceptionWarning")
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Pki:
    ca: Path
    server: tuple[Path, Path]  # certificate, key
    client: tuple[Path, Path]
    other_ca: Path  # a CA that signed nothing here


def openssl(folder: Path, *args: str) -> None:
    subprocess.run([need_binary("openssl", "openssl"), *args], cwd=folder, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> Path:
    openssl(folder, "req", "-x509", *EC, "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
            "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return folder / f"{name}.crt"


def issue(folder: Path, ca: str, name: str, extensions: str) -> tuple[Path, Path]:
    openssl(folder, "req", "-new", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
    (folder / f"{name}.ext").write_text(extensions + "\nbasicConstraints=CA:FALSE\n"
                                        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n")
    openssl(folder, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-set_serial", "1" if name == "server" else "2", "-days", "2", "-out", f"{name}.crt",
            "-extfile", f"{name}.ext")
    return folder / f"{name}.crt", folder / f"{name}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder, "ca")
    server = issue(folder, "ca", "server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth")
    client = issue(folder, "ca", "client", "extendedKeyUsage=clientAuth")
    return Pki(ca, server, client, make_ca(folder, "other-ca"))


@dataclass
class TlsBroker:
    broker: Mosquitto
    tls_port: int  # server certificate only
    mtls_port: int  # a client certificate signed by the CA is required


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Pki):
    tls_port, mtls_port = free_port(), free_port()
    listener = f"cafile {pki.ca}\ncertfile {pki.server[0]}\nkeyfile {pki.server[1]}\n"
    broker = Mosquitto(tmp_path, extra_config=(f"listener {tls_port} 127.0.0.1\n{listener}"
                                               f"listener {mtls_port} 127.0.0.1\n{listener}require_certificate true\n"))
    broker.start()
    yield TlsBroker(broker, tls_port, mtls_port)
    broker.stop()


def config(url: str, **tls: object) -> Config:
    return district([mqtt_device("e1", "d1", [CH4])], mqtt={"url": url, **{k: str(v) for k, v in tls.items()}})


class Running:
    """The MQTT collector of ``cfg`` in a task, for the length of an ``async with``."""

    def __init__(self, cfg: Config) -> None:
        self.intake = Intake()
        self.collector = MqttCollector(cfg.mqtt, Registry(cfg), self.intake, "gw-tls", backoff=(0.1, 0.5))

    async def __aenter__(self) -> MqttCollector:
        self.task = asyncio.create_task(self.collector.run())
        return self.collector

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def publish_plain(port: int, topic: str, payload: bytes) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="tls-test-peer")
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(topic, payload, qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_the_collector_reads_over_tls_with_the_configured_ca(tls_broker: TlsBroker, pki: Pki) -> None:
    async def main() -> None:
        run = Running(config(f"mqtts://127.0.0.1:{tls_broker.tls_port}", ca_file=pki.ca))
        async with run as collector:
            await until(lambda: collector.subscribed, 10, "the subscriptions over TLS")
            publish_plain(tls_broker.broker.port, "gridgate/v1/e1/d1/telemetry", b'{"values": {"ch4": 4.5}}')
            batch = await asyncio.wait_for(run.intake.readings.get(), 10)
            assert batch.value.tolist() == [4.5] and collector.health()["last_error"] == ""

    asyncio.run(main())


REFUSED = "TLS: the broker's certificate was refused"


@paho_drops_failed_tls_sockets
@pytest.mark.parametrize("ca, error", [
    ("other_ca", f"{REFUSED}: self-signed certificate in certificate chain"),  # a CA that did not sign it
    (None, REFUSED),  # no ca_file: the system's CAs, which do not know the test's CA
])
def test_a_refused_broker_certificate_is_named_in_the_health(tls_broker: TlsBroker, pki: Pki, ca: str | None,
                                                             error: str) -> None:
    async def main() -> None:
        keys = {"ca_file": getattr(pki, ca)} if ca else {}
        async with Running(config(f"mqtts://127.0.0.1:{tls_broker.tls_port}", **keys)) as collector:
            await until(lambda: error in collector.health()["last_error"], 10, "the certificate error")
            assert collector.health()["last_error"].startswith("cannot connect to mqtts://127.0.0.1:")
            assert not collector.health()["connected"]

    asyncio.run(main())


@paho_drops_failed_tls_sockets
def test_a_client_certificate_for_a_broker_that_requires_one(tls_broker: TlsBroker, pki: Pki) -> None:
    async def main() -> None:
        url = f"mqtts://127.0.0.1:{tls_broker.mtls_port}"
        with_cert = config(url, ca_file=pki.ca, cert_file=pki.client[0], key_file=pki.client[1])
        async with Running(with_cert) as collector:
            await until(lambda: collector.subscribed, 10, "the subscriptions with a client certificate")
        async with Running(config(url, ca_file=pki.ca)) as collector:
            await until(lambda: collector.health()["last_error"], 10, "a refusal")
            assert "closed the connection before accepting it" in collector.health()["last_error"]
            assert not collector.health()["connected"]
        notifier = MqttNotifier(with_cert.mqtt, "gw-tls-notifier")  # the notifier builds the same context
        task = asyncio.create_task(notifier.run())
        await until(lambda: notifier.connected, 10, "the notifier over TLS")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_tls_keys_are_checked(tmp_path: Path, pki: Pki) -> None:
    for bad in [{"url": "mqtt://b", "ca_file": "x"}, {"url": "mqtts://b", "key_file": "k"}]:
        with pytest.raises(ValidationError):
            MqttSection(**bad)
    with pytest.raises(ConfigError) as err:
        client_context(MqttSection(url="mqtts://b", ca_file=str(tmp_path / "missing.crt")))
    assert err.value.problems[0][0] == "mqtt.ca_file"
    with pytest.raises(ConfigError) as err:
        client_context(MqttSection(url="mqtts://b", ca_file=str(pki.ca), cert_file=str(pki.client[0])))
    assert err.value.problems[0][0] == "mqtt.cert_file"  # its key is in another file
