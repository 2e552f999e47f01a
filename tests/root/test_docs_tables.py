"""The README's state and case tables are the code's tables: one is regenerated from the other."""

from __future__ import annotations

from pathlib import Path

from alerts.model import BY_CONDITION, CASE_ACTIONS, CASE_STATES, CASES, EVENTS, STATES, TRANSITIONS

README = Path(__file__).resolve().parents[2] / "README.md"


def table(header: str) -> dict[tuple[str, str], str]:
    """The markdown table whose header row starts with ``| {header} |``: (row, column) -> cell."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    cols = [c.strip() for c in lines[start].strip("|").split("|")][1:]
    cells = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        row = [c.strip() for c in line.strip("|").split("|")]
        for col, cell in zip(cols, row[1:], strict=True):
            if cell != "–":
                cells[(row[0], col)] = cell
    return cells


def test_readme_state_table_is_the_code_table() -> None:
    want = {k: ("by condition" if v == BY_CONDITION else v) for k, v in TRANSITIONS.items()}
    got = table("state")
    assert {s for s, _ in got} <= set(STATES) and {e for _, e in got} <= set(EVENTS)
    assert got == want


def test_readme_case_table_is_the_code_table() -> None:
    got = table("case")
    assert {s for s, _ in got} <= set(CASE_STATES) and {a for _, a in got} <= set(CASE_ACTIONS)
    assert got == CASES
