"""The configuration of Modbus transports and shared links: what is refused, with its key path."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from simulators.devices import minimal_config

POINT = [{"key": "t", "kind": "temperature", "register": "holding", "address": 0, "dtype": "int16"}]


def dev(name: str, **kw: Any) -> dict[str, Any]:
    return {"enterprise": "acme", "id": name, "protocol": "modbus", "points": POINT, **kw}


def problems(devices: list[dict[str, Any]], links: list[dict[str, Any]] | None = None) -> list[tuple[str, str]]:
    cfg = minimal_config(devices)
    if links is not None:
        cfg["links"] = links
    with pytest.raises(ConfigError) as exc:
        parse_config(cfg)
    return exc.value.problems


def test_transports_accepted():
    cfg = minimal_config([dev("a", host="10.0.0.5", port=502), dev("b", transport="rtu-over-tcp", host="h", port=4001),
                          dev("c", transport="rtu", port="/dev/ttyUSB0", unit=1, baudrate=19200, parity="E"),
                          dev("d", transport="rtu", port="/dev/ttyUSB0", unit=2, baudrate=19200, parity="E")])
    cfg["links"] = [{"transport": "rtu", "port": "/dev/ttyUSB0", "gap": 0.02},
                    {"transport": "rtu-over-tcp", "host": "h", "port": 4001, "connections": 2}]
    parsed = parse_config(cfg)
    assert parsed.devices[2].link_key() == parsed.devices[3].link_key() == ("rtu", "", "/dev/ttyUSB0")
    assert parsed.links[1].connections == 2


@pytest.mark.parametrize("device,where,words", [
    (dev("x", transport="rtu", port=502), "devices[0] (acme/x)", 'needs port = the serial port'),
    (dev("x", transport="rtu", port="/dev/ttyS0", host="h"), "devices[0] (acme/x)", "takes no host"),
    (dev("x", host="h", port="/dev/ttyS0"), "devices[0] (acme/x)",
     "transport ('tcp', the default) needs host and a port number 1-65535; port '/dev/ttyS0' is a serial port"),
    (dev("x", port=502), "devices[0] (acme/x)", "needs host and a port number"),
    (dev("x", host="h", port=70000), "devices[0] (acme/x)", "needs host and a port number"),
    (dev("x", transport="modbus-udp", host="h"), "devices[0] (acme/x).transport", ""),
    (dev("x", host="h", port=502.0), "devices[0] (acme/x).port", "an integer is meant here: write 502, not 502.0"),
    (dev("x", host="h", stopbits=True), "devices[0] (acme/x).stopbits", "an integer is meant here, not true"),
])
def test_endpoint_refusals(device, where, words):
    found = problems([device])
    assert any(path == where and words in msg for path, msg in found), found


def test_links_and_serial_lines_are_checked_across_devices():
    found = problems([dev("a", transport="rtu", port="/dev/ttyUSB0", unit=1, baudrate=9600),
                      dev("b", transport="rtu", port="/dev/ttyUSB0", unit=2, baudrate=19200)],
                     links=[{"host": "10.9.9.9", "port": 502}, {"transport": "rtu", "port": "/dev/ttyUSB0"},
                            {"transport": "rtu", "port": "/dev/ttyUSB0", "gap": 0.1}])
    assert ("devices[1] (acme/b)", "serial settings differ from another device on /dev/ttyUSB0 (acme/a): "
            "baudrate (19200) here, baudrate (9600) there") in found
    assert ("links[0] (10.9.9.9:502)", "no Modbus device uses tcp 10.9.9.9:502") in found
    assert ("links[2] (/dev/ttyUSB0)", "a second entry for the same endpoint") in found
    # a setting one device leaves at its default is named as the default, not as written
    found = problems([dev("a", transport="rtu", port="/dev/ttyUSB0", unit=1),
                      dev("b", transport="rtu", port="/dev/ttyUSB0", unit=2, parity="E")])
    assert found == [("devices[1] (acme/b)", "serial settings differ from another device on /dev/ttyUSB0 (acme/a): "
                                             "parity ('E') here, parity ('N', the default) there")]
