"""Smoke test of the benchmark harness: every phase runs, every figure comes out. No timing asserts.

Runs ``bench/run.py --smoke`` (20 clients, 1 s windows) as a subprocess: the gateway, the naive
relay, the C floor, Mosquitto's fan-out, one transport, the ingest micro-benchmark and the frame
analysis, with the report and raw JSON written to a temporary directory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.mosquitto import MOSQUITTO

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(shutil.which("gcc") is None, reason="the harness compiles C with gcc"),
    pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="needs mosquitto"),
    pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="pins the server and the load apart"),
]


def test_smoke_run_produces_every_figure(tmp_path: Path) -> None:
    out, png, raw = tmp_path / "performance.md", tmp_path / "performance.png", tmp_path / "r.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "run.py"),
            "--smoke",
            "--out",
            str(out),
            "--png",
            str(png),
            "--json",
            str(raw),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(raw.read_text())

    runs = {run["system"]: run for run in result["runs"]}
    assert set(runs) == {"ours", "naive", "floor", "mosquitto"}
    for system, run in runs.items():
        assert run["error"] == "", (system, run["error"])
        assert run["connected"] == 20, system
        assert run["frames"] > 0, system
        assert run["bytes"] > 0, system
        assert run["cpu_s"] > 0, system
        assert run["rss_after"] > 0, system
    for system in ("ours", "naive", "mosquitto"):  # publish -> client latency
        latency = runs[system]["latency_ms"]
        assert latency["count"] > 0, system
        assert latency["p99"] >= latency["p50"] > 0, system
    assert runs["ours"]["gateway_to_client_ms"]["count"] > 0
    assert runs["ours"]["snapshot_ms"]["count"] > 0  # snapshot to a new client
    assert runs["ours"]["extra"]["ingest_cpu_per_s"] > 0

    (transport,) = result["transports"]
    assert transport["error"] == ""
    assert transport["frames"] > 0

    assert result["ingest"]["parse_judge_per_s"] > 0
    assert result["ingest"]["handle_per_s"] > 0
    analysis = result["analysis"]
    for key in ("frames_per_s", "bytes_per_s", "bytes_per_s_deflate_shared", "snapshot_bytes"):
        assert analysis[key] > 0, key

    report = out.read_text()
    for heading in ("## Setup", "## Results", "### Ratios", "### Transports", "### Ingest"):
        assert heading in report
    assert "ours/floor frames per CPU-second" in report
    if importlib.util.find_spec("matplotlib") is not None:
        assert png.stat().st_size > 0
