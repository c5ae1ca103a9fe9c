"""Fixtures shared by every suite: a real Mosquitto per test, the shipped registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from signal_gateway.core.registry import Registry, load_registry
from tests.support.mosquitto import MosquittoProcess

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The shipped city registry (intersections.yaml)."""
    return load_registry(REPO / "intersections.yaml")


@pytest.fixture
def mosquitto() -> Iterator[MosquittoProcess]:
    """A Mosquitto of this test's own on a free port, anonymous, killed afterwards."""
    with MosquittoProcess() as broker:
        yield broker
