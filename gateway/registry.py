"""The registry: who and what the gateway supervises, with a dense integer index per sensor.

Built from a validated :class:`~gateway.config.Config`. Sensor ids are
``{enterprise}/{device}/{point}``; the registry numbers them ``0..n-1`` so that the detector and
the stores can keep per-sensor state in arrays. Lookups answer the routing questions: which grid
an enterprise belongs to, which officers serve that grid, which enterprises a login may see.

The numbering is a :class:`Layout`: without one, sensors are numbered in the order of the
configuration; the registry database (:mod:`gateway.register`) keeps it, so a number means the same
sensor across restarts and edits (the outbox stores numbers). A number is never reused: a sensor or
device that is retired keeps its number, as a *retired* entry that lookups by id no longer find.

The registry changes in place (:meth:`Registry.update`), so everything that holds it sees the new
structure at once; what derives arrays from it subscribes to :attr:`Registry.listeners`, called on
the event loop with the :class:`Change`, in the order they subscribed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from gateway.config import (
    Config,
    Department,
    Enterprise,
    Grid,
    ModbusDevice,
    MqttDevice,
    Officer,
    Point,
)
from gateway.duty import DutyRoster
from gateway.errors import RegistryError, UnknownSensor

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SensorInfo:
    """One time series: a point of a device of an enterprise."""

    index: int
    sensor_id: str
    enterprise: str
    device: str
    device_index: int
    grid: str
    point: Point
    retired: bool = False

    @property
    def key(self) -> str:
        return self.point.key

    @property
    def kind(self) -> str:
        return self.point.kind

    @property
    def unit(self) -> str:
        return self.point.unit


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A device with the sensor index of each of its points."""

    index: int
    enterprise: str
    id: str
    grid: str
    config: ModbusDevice | MqttDevice
    points: Mapping[str, int] = field(default_factory=dict)  # point key -> sensor index
    retired: bool = False

    @property
    def device_id(self) -> str:
        return f"{self.enterprise}/{self.id}"

    @property
    def protocol(self) -> str:
        return self.config.protocol


@dataclass
class Layout:
    """Which number each sensor and device has, and what retired ones were (to keep their numbers).

    ``assign`` numbers what a configuration adds after the highest number ever given.
    """

    sensors: dict[str, int] = field(default_factory=dict)  # sensor id -> index
    devices: dict[str, int] = field(default_factory=dict)  # "ent/dev" -> index
    points: dict[str, Point] = field(default_factory=dict)  # sensor id -> its last point (retired ones)
    device_configs: dict[str, ModbusDevice | MqttDevice] = field(default_factory=dict)  # the same for devices

    def copy(self) -> Layout:
        return Layout(dict(self.sensors), dict(self.devices), dict(self.points), dict(self.device_configs))

    def assign(self, cfg: Config) -> tuple[list[str], list[str]]:
        """Number the devices and sensors of ``cfg`` that have no number yet; the new ids, in order."""
        new_devices: list[str] = []
        new_sensors: list[str] = []
        for dev in cfg.devices:
            did = f"{dev.enterprise}/{dev.id}"
            if did not in self.devices:
                self.devices[did] = len(self.devices)
                new_devices.append(did)
            self.device_configs[did] = dev
            for p in cfg.device_points(dev):
                sid = f"{did}/{p.key}"
                if sid not in self.sensors:
                    self.sensors[sid] = len(self.sensors)
                    new_sensors.append(sid)
                self.points[sid] = p
        return new_devices, new_sensors


@dataclass(frozen=True)
class Change:
    """What one registry update changed, for those who keep state per sensor or device."""

    version: int
    added_devices: frozenset[str] = frozenset()  # "ent/dev"
    changed_devices: frozenset[str] = frozenset()  # its settings or points differ
    retired_devices: frozenset[str] = frozenset()
    retired_sensors: frozenset[int] = frozenset()
    retired_enterprises: frozenset[str] = frozenset()
    moved: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # enterprise -> (old grid, new grid)
    actor: str = "gateway"

    @property
    def devices(self) -> frozenset[str]:
        """Devices added, changed or retired."""
        return self.added_devices | self.changed_devices | self.retired_devices


Listener = Callable[["Registry", Change], None]


class Registry:
    """Grids, officers, departments, enterprises, devices and sensors, with their lookups."""

    def __init__(self, cfg: Config, layout: Layout | None = None, version: int = 0) -> None:
        self.listeners: list[Listener] = []
        self.version = version
        self.layout = layout if layout is not None else Layout()
        self._build(cfg)

    def _build(self, cfg: Config) -> None:
        layout = self.layout
        layout.assign(cfg)
        enterprises = {e.id: e for e in cfg.enterprises}
        live_devices = {f"{d.enterprise}/{d.id}": d for d in cfg.devices}
        devices: list[DeviceInfo | None] = [None] * len(layout.devices)
        sensors: list[SensorInfo | None] = [None] * len(layout.sensors)
        by_id: dict[tuple[str, str], DeviceInfo] = {}
        for did, d_index in layout.devices.items():
            live = live_devices.get(did)
            dev = live if live is not None else layout.device_configs[did]
            ent = enterprises.get(dev.enterprise)
            grid = ent.grid if ent is not None else ""
            points: dict[str, int] = {}
            for p in (cfg.device_points(dev) if live is not None else dev.points):
                points[p.key] = layout.sensors[f"{did}/{p.key}"]
            info = DeviceInfo(d_index, dev.enterprise, dev.id, grid, dev, points, retired=live is None)
            devices[d_index] = info
            if live is not None:
                by_id[(dev.enterprise, dev.id)] = info
        for sid, idx in layout.sensors.items():
            did, _, key = sid.rpartition("/")
            d = devices[layout.devices[did]]
            assert d is not None
            live_sensor = not d.retired and d.points.get(key) == idx
            sensors[idx] = SensorInfo(idx, sid, d.enterprise, d.id, d.index, d.grid, layout.points[sid],
                                      retired=not live_sensor)
        # Assigned last, each in one step: a thread reading meanwhile sees the old or the new of each.
        self.config = cfg
        self.grids: dict[str, Grid] = {g.id: g for g in cfg.grids}
        self.officers: dict[str, Officer] = {o.id: o for o in cfg.officers}
        self.duty = DutyRoster(cfg.officers, cfg.gateway.tzinfo)  # parsed once: asked per alarm event
        self.departments: dict[str, Department] = {d.id: d for d in cfg.departments}
        self.enterprises: dict[str, Enterprise] = enterprises
        self.sensors: list[SensorInfo] = sensors  # type: ignore[assignment]  # every number is filled
        self.devices: list[DeviceInfo] = devices  # type: ignore[assignment]
        self.devices_by_id: dict[tuple[str, str], DeviceInfo] = by_id

    def update(self, cfg: Config, version: int, actor: str = "gateway") -> Change:
        """Take ``cfg`` as the registry from now on, tell the listeners, and return what changed."""
        old_cfg = self.config
        old_devices = {d.device_id: d for d in self.devices if not d.retired}
        old_grids = {e.id: e.grid for e in self.enterprises.values()}
        old_sensors = {s.index for s in self.sensors if not s.retired}
        self._build(cfg)
        self.version = version
        now_devices = {d.device_id: d for d in self.devices if not d.retired}
        changed = frozenset(
            did for did, d in now_devices.items() if did in old_devices and (
                d.config != old_devices[did].config
                or cfg.device_points(d.config) != old_cfg.device_points(old_devices[did].config)))
        change = Change(
            version=version,
            added_devices=frozenset(now_devices.keys() - old_devices.keys()),
            changed_devices=changed,
            retired_devices=frozenset(old_devices.keys() - now_devices.keys()),
            retired_sensors=frozenset(old_sensors - {s.index for s in self.sensors if not s.retired}),
            retired_enterprises=frozenset(old_grids.keys() - self.enterprises.keys()),
            moved={e: (g, self.enterprises[e].grid) for e, g in old_grids.items()
                   if e in self.enterprises and self.enterprises[e].grid != g},
            actor=actor,
        )
        for listener in list(self.listeners):
            try:
                listener(self, change)
            except Exception:  # the change is committed and in force: one failing follower must not stop the others
                log.exception("registry version %d: %r could not follow the change", version, listener)
        return change

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(registry, change)`` after each :meth:`update`."""
        self.listeners.append(listener)

    def __len__(self) -> int:
        return len(self.sensors)

    def sensor_index(self, sensor_id: str) -> int:
        # the layout numbers every sensor ever registered (no second table of 30,000 ids): in service
        # is what is numbered, built already (a change may be under way) and not retired
        sensors = self.sensors
        idx = self.layout.sensors.get(sensor_id)
        if idx is None or idx >= len(sensors) or sensors[idx].retired:
            raise UnknownSensor(f"unknown sensor {sensor_id!r}")
        return idx

    def sensor(self, sensor_id: str) -> SensorInfo:
        return self.sensors[self.sensor_index(sensor_id)]

    def device(self, enterprise: str, device: str) -> DeviceInfo:
        try:
            return self.devices_by_id[(enterprise, device)]
        except KeyError:
            raise RegistryError(f"unknown device {enterprise}/{device}") from None

    def devices_of(self, protocol: str) -> list[DeviceInfo]:
        """The devices in service that speak ``protocol``."""
        return [d for d in self.devices if d.protocol == protocol and not d.retired]

    def any_sensor(self, sensor_id: str) -> SensorInfo:
        """A sensor by id, a retired one too (its history stays readable)."""
        idx = self.layout.sensors.get(sensor_id)
        if idx is None:
            raise UnknownSensor(f"unknown sensor {sensor_id!r}")
        return self.sensors[idx]

    def grid_of(self, enterprise: str) -> Grid:
        try:
            return self.grids[self.enterprises[enterprise].grid]
        except KeyError:
            raise RegistryError(f"unknown enterprise {enterprise!r}") from None

    def officers_of(self, enterprise: str) -> list[str]:
        """The officers who receive an enterprise's alarms: those of its grid."""
        return list(self.grid_of(enterprise).officers)

    def grids_of_officer(self, officer: str) -> set[str]:
        """The grids an officer serves, is the responsible person of, or the contact person of."""
        return {g.id for g in self.grids.values() if officer in g.officers or officer in (g.responsible, g.contact)}

    def grids_in_area(self, area: str) -> set[str]:
        """Grids whose village or community code starts with ``area`` (a district or town)."""
        return {g.id for g in self.grids.values() if g.area.startswith(area)}

    def enterprises_in_grids(self, grids: Iterable[str]) -> set[str]:
        wanted = set(grids)
        return {e.id for e in self.enterprises.values() if e.grid in wanted}

    def enterprises_of_department(self, department: str) -> set[str]:
        return {
            e.id
            for e in self.enterprises.values()
            if e.lead_department == department or department in e.cooperating_departments
        }
