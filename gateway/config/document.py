"""The whole ``gridgate.toml``: the :class:`Config` model, and which model validates each of its keys.

:func:`gateway.config.validate.parse_config` validates the file a section and a list item at a time
(so that one wrong key hides nothing else); ``SECTIONS`` and ``LISTS`` say with which model.
"""

from __future__ import annotations

from gateway.config.base import Strict
from gateway.config.devices import Device, ModbusDevice, ModbusLinkConfig, MqttDevice
from gateway.config.points import Point
from gateway.config.sections import (
    AlarmsSection,
    ApiSection,
    GatewaySection,
    MqttSection,
    NotifierConfig,
    StorageSection,
    User,
    WebhookNotifierConfig,
)
from gateway.config.site import Department, Enterprise, Grid, Officer


class Config(Strict):
    gateway: GatewaySection = GatewaySection()
    mqtt: MqttSection = MqttSection()
    storage: StorageSection = StorageSection()
    api: ApiSection = ApiSection()
    alarms: AlarmsSection = AlarmsSection()
    users: list[User] = []
    departments: list[Department] = []
    officers: list[Officer] = []
    grids: list[Grid] = []
    enterprises: list[Enterprise] = []
    devices: list[Device] = []
    points: list[Point] = []  # top-level points name their enterprise and device
    notifiers: list[NotifierConfig] = []
    links: list[ModbusLinkConfig] = []

    def device_points(self, device: ModbusDevice | MqttDevice) -> list[Point]:
        """A device's points: those nested under it and the top-level ones that name it."""
        extra = [p for p in self.points if p.enterprise == device.enterprise and p.device == device.id]
        return list(device.points) + extra


SECTIONS: dict[str, type[Strict]] = {
    "gateway": GatewaySection,
    "mqtt": MqttSection,
    "storage": StorageSection,
    "api": ApiSection,
    "alarms": AlarmsSection,
}
# Each list's item model; a list of a tagged union names its tag key and a model per tag.
LISTS: dict[str, type[Strict] | tuple[str, dict[str, type[Strict]]]] = {
    "users": User,
    "departments": Department,
    "officers": Officer,
    "grids": Grid,
    "enterprises": Enterprise,
    "devices": ("protocol", {"modbus": ModbusDevice, "mqtt": MqttDevice}),
    "points": Point,
    "notifiers": ("type", {"webhook": WebhookNotifierConfig}),
    "links": ModbusLinkConfig,
}
