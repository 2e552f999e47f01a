"""The import rule: layers go down, and only the composition root imports collectors, api and simulators.

Walks every module of the package with :mod:`ast` (imports inside functions and under
``TYPE_CHECKING`` included: a lazy import is still a dependency) and fails on any that goes up or
sideways. The layers, bottom first:

- ``gateway`` (configuration, registry, batch, errors, clock, duty, standards, retry, the SQLite
  helper): imports nothing of ours but itself;
- ``gateway.accounts`` (login accounts: store, throttle, password pool, tokens): the bottom layer;
- ``gateway.ingest`` (intake, outbox): the bottom layer;
- ``gateway.storage`` (sinks, the readings store, InfluxDB, export), ``collectors`` and ``alerts``:
  the bottom layer and ingest, never each other;
- ``simulators``: the bottom layer only (they are peers the gateway talks to, not parts of it);
- ``api``: everything above but collectors, simulators and the composition root (accounts included);
- ``gateway.root`` (runtime wiring, CLI, demo, benchmarks): anything; nothing imports it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "collectors", "alerts", "api", "simulators")
ALLOWED = {
    "gateway": {"gateway"},
    "gateway.accounts": {"gateway", "gateway.accounts"},
    "gateway.ingest": {"gateway", "gateway.ingest"},
    "gateway.storage": {"gateway", "gateway.ingest", "gateway.storage"},
    "collectors": {"gateway", "gateway.ingest", "collectors"},
    "alerts": {"gateway", "gateway.ingest", "alerts"},
    "simulators": {"gateway", "simulators"},
    "api": {"gateway", "gateway.accounts", "gateway.ingest", "gateway.storage", "alerts", "api"},
    "gateway.root": {"gateway", "gateway.accounts", "gateway.ingest", "gateway.storage", "collectors", "alerts", "api",
                     "simulators", "gateway.root"},
}


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to, None for a module that is not ours."""
    parts = module.split(".")
    if parts[0] not in PACKAGES:
        return None
    if parts[0] == "gateway" and len(parts) > 1 and f"gateway.{parts[1]}" in ALLOWED:
        return f"gateway.{parts[1]}"
    return parts[0]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def package_of(path: Path) -> str:
    return module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]


def imports_of(path: Path, package: str) -> list[tuple[int, str]]:
    """Every module ``path`` (in ``package``) imports, absolute, with its line."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from gateway import x`` may name a module: judge the most specific name
            found += [(node.lineno, f"{base}.{alias.name}" if alias.name != "*" else base) for alias in node.names]
    return found


def bad_imports(source: str, imports: list[tuple[int, str]]) -> list[str]:
    """The imports a module of layer ``source`` may not make."""
    return [f"{line}: {source} imports {target} ({layer_of(target)})" for line, target in imports
            if layer_of(target) not in (None, *ALLOWED[source])]


def violations() -> list[str]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = layer_of(module_name(path))
            assert source is not None
            out += [f"{path.relative_to(ROOT)}:{v}" for v in bad_imports(source, imports_of(path, package_of(path)))]
    return out


def test_layers_go_down():
    assert violations() == []


def test_the_rule_catches_imports_that_go_up_or_sideways(tmp_path: Path):
    """The walker itself: absolute and relative, top-level and lazy imports are all seen and judged."""
    probe = tmp_path / "probe.py"
    probe.write_text("import numpy\nfrom alerts.model import Alarm\n\n\ndef f():\n"
                     "    from api.server import serve_api\n    from .detector import Detector\n"
                     "    from ..collectors import modbus\n    from gateway.root import runtime\n")
    got = imports_of(probe, "alerts")
    assert got == [(1, "numpy"), (2, "alerts.model.Alarm"), (6, "api.server.serve_api"),
                   (7, "alerts.detector.Detector"), (8, "collectors.modbus"), (9, "gateway.root.runtime")]
    assert [v.split(":")[0] for v in bad_imports("alerts", got)] == ["6", "8", "9"]
    assert bad_imports("gateway.root", got) == []
    assert [v.split(":")[0] for v in bad_imports("gateway", got)] == ["2", "6", "7", "8", "9"]
    assert layer_of("gateway.storage.service") == "gateway.storage"
    assert layer_of("gateway.accounts.store") == "gateway.accounts"
    assert [v.split(":")[0] for v in bad_imports("gateway.accounts", got)] == ["2", "6", "7", "8", "9"]
    assert layer_of("gateway.sqlite") == "gateway"


def test_every_package_has_a_layer():
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            assert layer_of(module_name(path)) in ALLOWED, path


def test_check_imports_the_configuration_alone():
    """``gridgate check`` loads the configuration models and the registry: no protocol, store or web stack."""
    code = ("import sys; from gateway.root.cli import main; rc = main(['check', '-c', 'gridgate.example.toml']);"
            "print(rc); print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    rc, modules = out.strip().splitlines()[-2:]
    assert rc == "0"
    ours = {m for m in modules.split() if m.split(".")[0] in PACKAGES}
    assert ours == {"gateway", "gateway.config", "gateway.config.base", "gateway.config.devices",
                    "gateway.config.document", "gateway.config.points", "gateway.config.references",
                    "gateway.config.report", "gateway.config.sections", "gateway.config.site",
                    "gateway.config.validate", "gateway.duty", "gateway.errors", "gateway.registry",
                    "gateway.root", "gateway.root.cli", "gateway.standards"}
    heavy = {m for m in modules.split() if m.split(".")[0] in
             ("pymodbus", "paho", "fastapi", "numpy", "httpx", "influxdb_client", "sqlite3", "uvicorn")}
    assert heavy == set()
