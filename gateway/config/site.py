"""Who supervises whom: ``[[departments]]``, ``[[officers]]``, ``[[grids]]`` and ``[[enterprises]]``."""

from __future__ import annotations

from pydantic import Field

from gateway.config.base import Slug, Strict
from gateway.duty import DutyEntry


class Department(Strict):
    id: Slug
    name: str


class Officer(Strict):
    id: Slug
    name: str
    phone: str | None = None
    duty: list[DutyEntry] = []  # e.g. "mon-fri 08:00-18:00" (grammar: gateway/duty.py); none: always on duty


class Grid(Strict):
    id: Slug
    name: str
    area: str = Field(pattern=r"^[0-9]{2,12}$")
    officers: list[Slug] = Field(min_length=1)
    responsible: Slug | None = None
    contact: Slug | None = None


class Enterprise(Strict):
    id: Slug
    name: str
    grid: Slug
    lead_department: Slug
    cooperating_departments: list[Slug] = []
    risk_class: str | None = None
    # From the town's register of supervised enterprises; shown to officers, never used for routing.
    credit_code: str | None = Field(None, pattern=r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$")
    address: str | None = None
    contact: str | None = None  # the enterprise's safety contact person
    phone: str | None = None

