"""Fixtures of the fault suite: the figures every scenario records, written at the end.

Each scenario calls ``figures.record(...)`` with its detection and recovery times, peak memory
and the count of wrong numbers shown. At the end of the session the table is printed (run with
``-s``) and merged into ``test-artifacts/faults.json`` (git-ignored), from which
docs/reliability.md's table is copied.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "faults.json"


@dataclass
class Row:
    """The figures of one scenario."""

    scenario: str
    detection_ms: int | None
    recovery_ms: int | None
    peak_rss_mb: float
    rss_growth_mb: float
    wrong_numbers: int
    numbers_checked: int
    notes: str = ""


@dataclass
class Figures:
    """Rows recorded by the scenarios of this session."""

    rows: dict[str, Row] = field(default_factory=dict)

    def record(
        self,
        scenario: str,
        *,
        detection_ms: int | None = None,
        recovery_ms: int | None = None,
        peak_rss_mb: float = 0.0,
        rss_growth_mb: float = 0.0,
        wrong_numbers: int = 0,
        numbers_checked: int = 0,
        notes: str = "",
    ) -> None:
        """Keep one scenario's figures and print them at once."""
        row = Row(
            scenario,
            detection_ms,
            recovery_ms,
            round(peak_rss_mb, 1),
            round(rss_growth_mb, 1),
            wrong_numbers,
            numbers_checked,
            notes,
        )
        self.rows[scenario] = row
        print(f"\n[fault] {_line(row)}")


def _ms(value: int | None) -> str:
    return "-" if value is None else f"{value}"


def _line(row: Row) -> str:
    return (
        f"{row.scenario}: detection {_ms(row.detection_ms)} ms, "
        f"recovery {_ms(row.recovery_ms)} ms, peak RSS {row.peak_rss_mb} MiB "
        f"(+{row.rss_growth_mb}), wrong {row.wrong_numbers}/{row.numbers_checked}"
        + (f" ({row.notes})" if row.notes else "")
    )


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    """The session's figures; merged into test-artifacts/faults.json at the end."""
    collected = Figures()
    yield collected
    if not collected.rows:
        return
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    merged: dict[str, dict[str, object]] = {}
    if ARTIFACT.exists():
        try:
            merged = {row["scenario"]: row for row in json.loads(ARTIFACT.read_text())}
        except (ValueError, KeyError, TypeError):
            merged = {}
    merged.update({name: asdict(row) for name, row in collected.rows.items()})
    ordered = sorted(merged.values(), key=lambda row: _order(str(row["scenario"])))
    ARTIFACT.write_text(json.dumps(ordered, indent=1, ensure_ascii=False) + "\n")
    print("\n\nfault suite figures (test-artifacts/faults.json):")
    for row in collected.rows.values():
        print("  " + _line(row))


def _order(name: str) -> tuple[int, str]:
    number = name.split(" ", 1)[0].rstrip("abcdefgh.")
    return (int(number) if number.isdigit() else 99, name)
