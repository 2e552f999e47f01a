"""The living registry: the registry database, the configuration built from it, and its changes.

At start (:func:`open_registry`) the database is seeded from the configuration file the first time;
later, a file whose registry changed is taken again when nobody changed the registry otherwise since
(a small site that only edits its file keeps working that way); when both changed, the database wins
and the log says how to take the file (``gridgate registry take-file``).

A change (:meth:`RegisterService.change`) is planned (:mod:`gateway.register.edit`), validated as
``gridgate check`` validates a file, committed with its audit entries and the numbers of new sensors,
and only then applied: :meth:`gateway.registry.Registry.update` tells everyone that keeps state per
sensor or device. Changes are serialised; each makes the version one higher.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.errors import ConfigError, GridgateError
from gateway.register import edit, imports
from gateway.register.document import (
    SECTIONS,
    Items,
    compose,
    config_digest,
    digest,
    items_of,
    iter_items,
    key_of,
)
from gateway.register.edit import Plan
from gateway.register.store import Edit, RegisterStore, VersionConflict
from gateway.registry import Change, Layout, Registry

log = logging.getLogger(__name__)
FILE = "file"  # the actor of changes that take the configuration file's registry


class ReloadRefused(GridgateError):
    """A configuration reload that cannot be applied completely; nothing of it was applied."""


@dataclass
class Opened:
    """What :func:`open_registry` found: the configuration to run with, its numbering and version."""

    config: Config
    layout: Layout
    version: int
    note: str


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _live(cfg: Config) -> tuple[set[str], set[str]]:
    """The ids of the devices and sensors in service."""
    devices = {f"{d.enterprise}/{d.id}" for d in cfg.devices}
    return devices, {f"{d.enterprise}/{d.id}/{p.key}" for d in cfg.devices for p in cfg.device_points(d)}


def open_registry(store: RegisterStore, cfg: Config, *, take_file: bool = False) -> Opened:
    """The registry to start with: ``cfg``'s when the database is new (seeding it) or when the file
    changed and the database did not otherwise; the database's when it was changed otherwise.
    ``take_file``: take the file's registry whatever was changed otherwise (an audited change).

    The common start (the database holds what the file says) compares digests only: the file's
    validated configuration is used as it is, and nothing of the registry is copied."""
    file_digest = config_digest(cfg)
    if store.version == 0:
        layout = Layout()
        layout.assign(cfg)
        edits = (Edit(s, key_of(s, it), "create", None, it) for s, it in iter_items(cfg))  # one at a time
        version = store.commit(edits, layout, layout.devices, FILE, _now_ms(), "seeded from the configuration file",
                               from_file=file_digest, items_digest=file_digest)
        return Opened(cfg, layout, version, "seeded from the configuration file")
    if store.file_digest != file_digest and (take_file or not store.edited_since_file):
        items = store.items()
        plan = edit.take_file(items, items_of(cfg))
        layout = store.layout(_live(cfg))
        layout.assign(cfg)
        devices = {e.key for e in plan.edits if e.section == "devices"}
        version = store.commit(plan.edits, layout, devices, FILE, _now_ms(), "the configuration file changed",
                               from_file=file_digest, items_digest=file_digest)
        return Opened(cfg, layout, version, f"took the configuration file's registry ({len(plan.edits)} changes)")
    note = "the registry database"
    if store.file_digest != file_digest:
        note = ("the registry database: the configuration file's registry changed too, but the registry was "
                "also changed through the API or an import since the file was last taken, so the file's "
                "changes are NOT applied; `gridgate registry take-file -c FILE` takes the file's registry")
        log.warning("%s", note)
    built = cfg
    if store.items_digest != file_digest:
        items = store.items()
        if digest(items) != file_digest:
            built = compose(cfg, items)
    layout = store.layout(_live(built))
    layout.assign(built)
    return Opened(built, layout, store.version, note)


class RegisterService:
    """Serialised, validated, audited and applied changes of the registry."""

    def __init__(self, store: RegisterStore, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self._items: Items | None = None  # read from the database when first needed
        self.retired: dict[str, set[str]] = {s: {key_of(s, b) for b, _ in store.retired(s)} for s in SECTIONS}
        self._lock = asyncio.Lock()

    @property
    def version(self) -> int:
        return self.registry.version

    @property
    def items(self) -> Items:
        """The items in service, per section (read from the database once, then kept up to date)."""
        if self._items is None:
            self._items = self.store.items()
        return self._items

    def get(self, section: str, key: str) -> tuple[dict[str, Any], int | None] | None:
        """An item with when it was retired (None: in service)."""
        return self.store.item(section, key)

    async def _loaded(self) -> Items:
        if self._items is None:
            self._items = await asyncio.to_thread(self.store.items)
        return self._items

    async def preview(self, planner: Callable[[Items, dict[str, set[str]]], Plan],
                      check: Callable[[Plan], None] | None = None) -> Plan:
        """What a change would do, validated, without doing it (a dry run)."""
        async with self._lock:
            plan = planner(await self._loaded(), self.retired)
            if check is not None:
                check(plan)
            if plan.edits:
                await asyncio.to_thread(compose, self.registry.config, plan.items)
            return plan

    async def change(self, planner: Callable[[Items, dict[str, set[str]]], Plan], actor: str, note: str = "",
                     check: Callable[[Plan], None] | None = None) -> tuple[Plan, Change | None]:
        """Plan a change on the registry as it is, check it (``check`` may refuse it, e.g. out of the
        actor's scope), validate, commit and apply it. Raises :class:`~gateway.errors.ConfigError`
        (invalid) or :class:`~gateway.register.edit.EditRefused`; a plan without edits changes nothing."""
        async with self._lock:
            plan = planner(await self._loaded(), self.retired)
            if check is not None:
                check(plan)
            if not plan.edits:
                return plan, None
            cfg = await asyncio.to_thread(compose, self.registry.config, plan.items)
            try:
                version = await self._commit(plan, cfg, actor, note)
            except VersionConflict:
                await self._reload()  # another process (gridgate import) changed it: take that, then refuse
                raise
            change = self.registry.update(cfg, version, actor)
            log.info("registry version %d by %s: %s", version, actor,
                     ", ".join(f"{e.action} {e.section} {e.key}" for e in plan.edits[:10])
                     + (f" and {len(plan.edits) - 10} more" if len(plan.edits) > 10 else ""))
            return plan, change

    async def _commit(self, plan: Plan, built: Config, actor: str, note: str, from_file: str | None = None) -> int:
        """Commit ``plan`` (whose registry ``built`` is) with the numbers of its devices, on the
        version the service holds, and keep its items and retired ids: the registry is updated next."""
        layout = self.registry.layout.copy()
        layout.assign(built)
        devices = {e.key for e in plan.edits if e.section == "devices"}
        version = await asyncio.to_thread(self.store.commit, plan.edits, layout, devices, actor, _now_ms(), note,
                                          from_file=from_file, expect=self.registry.version,
                                          items_digest=digest(plan.items))
        self._items = plan.items
        for e in plan.edits:
            if e.action == "retire":
                self.retired[e.section].add(e.key)
        self.registry.layout = layout
        return version

    async def import_registers(self, files: list[tuple[bytes, str]], actor: str, *, dry_run: bool = False,
                               check: Callable[[Plan], None] | None = None) -> imports.ImportResult:
        """Import registers (CSV or .xlsx; ``(bytes, filename)``) as one change, all or nothing;
        :class:`~gateway.register.tabular.TableError` with every problem at its file, row and column."""
        registers = await asyncio.to_thread(imports.read, files, await self._loaded())
        planner = imports.planner(registers)
        names = ", ".join(name for _, name in files)[:200]
        try:
            if dry_run:
                return imports.result(registers, await self.preview(planner, check), True, None)
            plan, change = await self.change(planner, actor, f"import of {names}", check)
        except ConfigError as exc:
            raise imports.located(exc, registers, planner(self.items, self.retired).items) from None
        return imports.result(registers, plan, False, change.version if change else None)

    async def take_config(self, cfg: Config) -> str:
        """A configuration file read again (``SIGHUP``): applied completely or not at all. What a
        running gateway can take is the registry (by the rule of :func:`open_registry`) and
        ``[alarms]``; a change of anything else needs a restart, and refuses the whole reload.
        Raises :class:`ReloadRefused` with the reason; returns what was applied."""
        async with self._lock:
            now = self.registry.config
            restart = [f"[{name}]" for name in ("gateway", "mqtt", "storage", "api")
                       if getattr(cfg, name) != getattr(now, name)]
            restart += [f"[[{name}]]" for name in ("notifiers", "links", "users")
                        if getattr(cfg, name) != getattr(now, name)]
            if restart:
                raise ReloadRefused(f"{', '.join(restart)} changed, which needs a restart; nothing was applied")
            file_digest = config_digest(cfg)
            file_changed = self.store.file_digest != file_digest
            if file_changed and self.store.edited_since_file:
                raise ReloadRefused("the file's registry changed, but the registry was also changed through the API "
                                    "or an import since the file was last taken; nothing was applied "
                                    "(`gridgate registry take-file` takes the file's registry)")
            base = now.model_copy(update={"alarms": cfg.alarms})
            items = await self._loaded()
            plan = edit.take_file(items, items_of(cfg)) if file_changed else Plan(items)
            built = await asyncio.to_thread(compose, base, plan.items) if plan.edits else base
            version = self.registry.version
            if file_changed:
                version = await self._commit(plan, built, FILE, "the configuration file was reloaded", file_digest)
            self.registry.update(built, version, FILE)
            alarms = "[alarms] changed" if cfg.alarms != now.alarms else "[alarms] unchanged"
            return f"{alarms}; {len(plan.edits)} registry changes; registry version {version}"

    async def reload(self) -> Change | None:
        """Take what another process (``gridgate import``) committed to the registry database."""
        async with self._lock:
            return await self._reload()

    async def _reload(self) -> Change | None:
        # one row of a WAL database: read on the loop (a worker thread for it every 2 s would make
        # the default executor's threads, and their memory arenas, live in an idle gateway)
        version = self.store.version
        if version == self.registry.version:
            return None
        items = await asyncio.to_thread(self.store.items)
        cfg = await asyncio.to_thread(compose, self.registry.config, items)
        layout = await asyncio.to_thread(self.store.layout, _live(cfg))
        layout.assign(cfg)
        last = await asyncio.to_thread(self.store.audit, None, None, 1)
        actor = last[0]["actor"] if last else FILE
        self._items = items
        self.retired = {s: {key_of(s, b) for b, _ in self.store.retired(s)} for s in SECTIONS}
        self.registry.layout = layout
        log.info("registry version %d from registry.db (by %s)", version, actor)
        return self.registry.update(cfg, version, actor)

    async def watch(self, period: float = 2.0) -> None:
        """Follow changes other processes commit, every ``period`` seconds, until cancelled."""
        refused = 0
        while True:
            await asyncio.sleep(period)
            try:
                if self.store.version != self.registry.version:
                    await self.reload()
            except Exception as exc:  # an invalid registry.db must not stop the gateway: it runs on with what it has
                version = self.store.version
                if version != refused:  # said once per version
                    refused = version
                    log.error("registry.db version %d cannot be taken; running on with version %d: %s", version,
                              self.registry.version, exc)


def open_service(data_dir: Path, cfg: Config, *, take_file: bool = False) -> tuple[RegisterService, Registry, str]:
    """Open ``registry.db`` in ``data_dir``: the service, the registry to run with, and what was done."""
    store = RegisterStore(data_dir / "registry.db")
    opened = open_registry(store, cfg, take_file=take_file)
    registry = Registry(opened.config, opened.layout, opened.version)
    return RegisterService(store, registry), registry, opened.note


def registry_in_service(cfg: Config, data_dir: str | Path | None = None) -> Registry:
    """The registry a gateway on ``data_dir`` runs with (its ``registry.db``: what the API and imports
    changed, retired sensors included), for commands beside it (``export``, ``mqtt-auth``); the
    file's when there is no registry database yet."""
    data = Path(data_dir or cfg.gateway.data_dir)
    if not (data / "registry.db").exists():
        return Registry(cfg)
    service, registry, _ = open_service(data, cfg)
    service.store.close()
    return registry
