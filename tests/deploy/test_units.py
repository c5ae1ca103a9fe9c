"""deploy/systemd/ units pass ``systemd-analyze verify`` without a single warning."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.support import DEPLOY, MOSQUITTO_CONF

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
DEBIAN_MOSQUITTO_UNIT = Path("/lib/systemd/system/mosquitto.service")
INSTALLED_ENTRY_POINT = "/opt/signal-gateway/.venv/bin/signal-gateway"

pytestmark = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")


def verify(*units: str, unit_path: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` with ``unit_path`` searched first (drop-ins included)."""
    assert SYSTEMD_ANALYZE is not None
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_path}:"}
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", *units],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize("unit", ["signal-gateway@.service", "signal-gateway-simulator.service"])
def test_service_unit_verifies_without_warnings(unit: str, tmp_path: Path) -> None:
    """Every directive is known to this systemd and the unit is consistent."""
    text = (DEPLOY / "systemd" / unit).read_text()
    assert INSTALLED_ENTRY_POINT in text
    # verify insists that ExecStart exists: point it at this checkout's entry point.
    entry_point = Path(sys.executable).with_name("signal-gateway")
    (tmp_path / unit).write_text(text.replace(INSTALLED_ENTRY_POINT, str(entry_point)))
    done = verify(str(tmp_path / unit), unit_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr


@pytest.mark.skipif(not DEBIAN_MOSQUITTO_UNIT.exists(), reason="Debian's mosquitto unit missing")
def test_mosquitto_drop_in_verifies_and_runs_the_city_config(tmp_path: Path) -> None:
    """Debian's mosquitto.service plus the drop-in: clean, and it starts the shipped config."""
    shutil.copy(DEBIAN_MOSQUITTO_UNIT, tmp_path)
    (tmp_path / "mosquitto.service.d").mkdir()
    drop_in = DEPLOY / "systemd" / "mosquitto.service.d" / "signal-gateway.conf"
    shutil.copy(drop_in, tmp_path / "mosquitto.service.d")
    done = verify("mosquitto.service", unit_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    assert "-c /etc/mosquitto/signal_gateway/mosquitto.conf" in drop_in.read_text()
    assert "/etc/mosquitto/signal_gateway/passwd" in MOSQUITTO_CONF.read_text()
