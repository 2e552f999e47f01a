"""The registry: who and what the gateway supervises, with a dense integer index per sensor.

Built from a validated :class:`~gateway.config.Config`. Sensor ids are
``{enterprise}/{device}/{point}``; the registry numbers them ``0..n-1`` so that the detector and
the stores can keep per-sensor state in arrays. Lookups answer the routing questions: which grid
an enterprise belongs to, which officers serve that grid, which enterprises a login may see.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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

    @property
    def device_id(self) -> str:
        return f"{self.enterprise}/{self.id}"

    @property
    def protocol(self) -> str:
        return self.config.protocol


class Registry:
    """Grids, officers, departments, enterprises, devices and sensors, with their lookups."""

    def __init__(self, cfg: Config) -> None:
        self.config = cfg
        self.grids: dict[str, Grid] = {g.id: g for g in cfg.grids}
        self.officers: dict[str, Officer] = {o.id: o for o in cfg.officers}
        self.duty = DutyRoster(cfg.officers, cfg.gateway.tzinfo)  # parsed once: asked per alarm event
        self.departments: dict[str, Department] = {d.id: d for d in cfg.departments}
        self.enterprises: dict[str, Enterprise] = {e.id: e for e in cfg.enterprises}
        self.sensors: list[SensorInfo] = []
        self.devices: list[DeviceInfo] = []
        self.devices_by_id: dict[tuple[str, str], DeviceInfo] = {}
        self._sensor_by_id: dict[str, int] = {}
        for dev in cfg.devices:
            grid = self.enterprises[dev.enterprise].grid
            points: dict[str, int] = {}
            for p in cfg.device_points(dev):
                idx = len(self.sensors)
                sid = f"{dev.enterprise}/{dev.id}/{p.key}"
                self.sensors.append(SensorInfo(idx, sid, dev.enterprise, dev.id, len(self.devices), grid, p))
                self._sensor_by_id[sid] = idx
                points[p.key] = idx
            info = DeviceInfo(len(self.devices), dev.enterprise, dev.id, grid, dev, points)
            self.devices.append(info)
            self.devices_by_id[(dev.enterprise, dev.id)] = info

    def __len__(self) -> int:
        return len(self.sensors)

    def sensor_index(self, sensor_id: str) -> int:
        try:
            return self._sensor_by_id[sensor_id]
        except KeyError:
            raise UnknownSensor(f"unknown sensor {sensor_id!r}") from None

    def sensor(self, sensor_id: str) -> SensorInfo:
        return self.sensors[self.sensor_index(sensor_id)]

    def device(self, enterprise: str, device: str) -> DeviceInfo:
        try:
            return self.devices_by_id[(enterprise, device)]
        except KeyError:
            raise RegistryError(f"unknown device {enterprise}/{device}") from None

    def devices_of(self, protocol: str) -> list[DeviceInfo]:
        return [d for d in self.devices if d.protocol == protocol]

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
