"""Default alarm limits from GB/T 50493-2019 clause 5.5.2, and the table of common toxic gases.

The standard gives upper bounds ("at most"): an enterprise may set stricter limits, never looser
ones. For oxygen, stricter means a deficiency alarm at or above 19.5 %VOL and an enrichment alarm
at or below 23.5 %VOL.
"""

from __future__ import annotations

from dataclasses import dataclass

COMBUSTIBLE_HIGH = 25.0  # %LEL, first-level alarm
COMBUSTIBLE_HIGH_HIGH = 50.0  # %LEL, second-level alarm
OXYGEN_LOW = 19.5  # %VOL, deficiency
OXYGEN_HIGH = 23.5  # %VOL, enrichment
MOLAR_VOLUME = 24.45  # litres per mole at 25 °C and 101.325 kPa, for ppm <-> mg/m³


@dataclass(frozen=True, slots=True)
class ToxicGas:
    """A toxic gas with its first-level limit (OEL, mg/m³), IDLH (mg/m³) and molar mass (g/mol)."""

    name: str
    oel_mg_m3: float
    idlh_mg_m3: float | None
    molar_mass: float

    def in_unit(self, mg_m3: float, unit: str) -> float:
        """Express a concentration given in mg/m³ in ``unit`` (``mg/m3``/``mg/m³`` or ``ppm``)."""
        if unit in ("mg/m3", "mg/m³"):
            return mg_m3
        if unit == "ppm":
            return mg_m3 * MOLAR_VOLUME / self.molar_mass
        raise ValueError(f"toxic gas unit must be ppm or mg/m³, not {unit!r}")


# Secondary source (see shared reference): the second level is twice the first.
TOXIC_GASES: dict[str, ToxicGas] = {
    "h2s": ToxicGas("H2S", 10.0, 430.0, 34.08),
    "co": ToxicGas("CO", 20.0, 1700.0, 28.01),
    "nh3": ToxicGas("NH3", 20.0, None, 17.03),
    "cl2": ToxicGas("Cl2", 1.0, None, 70.90),
    "benzene": ToxicGas("benzene", 6.0, None, 78.11),
}

# Typical measuring ranges (secondary source); a reading outside its point's range is a fault.
DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "combustible_gas": (0.0, 100.0),
    "oxygen": (0.0, 25.0),
}

LIMIT_KEYS = ("low_low", "low", "high", "high_high")


def standard_limits(kind: str, unit: str, gas: str | None) -> dict[str, float]:
    """The standard's limits for a point kind: the defaults and, at the same time, the loosest allowed."""
    if kind == "combustible_gas":
        return {"high": COMBUSTIBLE_HIGH, "high_high": COMBUSTIBLE_HIGH_HIGH}
    if kind == "oxygen":
        return {"low": OXYGEN_LOW, "high": OXYGEN_HIGH}
    if kind == "toxic_gas" and gas is not None:
        g = TOXIC_GASES[gas]
        return {"high": g.in_unit(g.oel_mg_m3, unit), "high_high": g.in_unit(2 * g.oel_mg_m3, unit)}
    return {}


def looser_than_standard(kind: str, limits: dict[str, float], standard: dict[str, float]) -> list[str]:
    """Messages for every limit in ``limits`` that is looser than the standard allows."""
    problems = []
    for key in ("high", "high_high"):
        if key in standard and key in limits and limits[key] > standard[key] + 1e-9:
            problems.append(
                f"{key} = {limits[key]:g} is looser than GB/T 50493-2019 allows for {kind} "
                f"(at most {standard[key]:.4g})"
            )
    if "low" in standard and "low" in limits and limits["low"] < standard["low"] - 1e-9:
        problems.append(
            f"low = {limits['low']:g} is looser than GB/T 50493-2019 allows for {kind} "
            f"(at least {standard['low']:.4g})"
        )
    return problems
