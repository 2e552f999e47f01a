"""`kill -HUP` on `gridgate run`: the configuration file is read again and applied completely or not
at all, the outcome and its reason in the log; the API keeps serving throughout."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.helpers import wait_for
from tests.peers import Mosquitto, free_port
from tests.root.test_cli_run import config_text, login, start


def log_has(folder: Path, text: str) -> bool:
    return text in (folder / "gridgate.log").read_text(encoding="utf-8", errors="replace")


def test_sighup_applies_all_or_nothing(tmp_path: Path, mosquitto: Mosquitto) -> None:
    api_port = free_port()
    cfg = tmp_path / "gridgate.toml"
    text = config_text(mosquitto.url, api_port, free_port(), tmp_path / "data")
    cfg.write_text(text, encoding="utf-8")
    proc = start(cfg)
    try:
        client = login(f"http://127.0.0.1:{api_port}/api/v1", time.monotonic() + 30, proc)

        def name() -> str:
            return client.get("/registry/enterprises/hengyuan-chem").json()["name"]

        assert name() == "恒源化工"
        # a registry change and an [alarms] change: both applied, no restart
        cfg.write_text(text.replace('name = "恒源化工"', 'name = "恒源化工集团"') + "\n[alarms]\nmax_shelve = 600\n",
                       encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: name() == "恒源化工集团", timeout=10, what="the reloaded enterprise name")
        wait_for(lambda: log_has(tmp_path, "[alarms] changed; 1 registry changes"), what="the reload in the log")

        # a change that needs a restart refuses the whole reload, the registry part included
        cfg.write_text(text.replace('name = "恒源化工"', 'name = "never applied"')
                       .replace(mosquitto.url, "mqtt://127.0.0.1:1") + "\n[alarms]\nmax_shelve = 600\n",
                       encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: log_has(tmp_path, "[mqtt] changed, which needs a restart; nothing was applied"),
                 timeout=10, what="the refusal in the log")
        assert name() == "恒源化工集团"

        # an invalid file: refused with its problems, nothing applied
        cfg.write_text(text.replace('lead_department = "yjj"', 'lead_department = "nobody"'), encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: log_has(tmp_path, "department 'nobody' does not exist"), timeout=10,
                 what="the invalid file's problem in the log")
        assert name() == "恒源化工集团" and proc.poll() is None
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
