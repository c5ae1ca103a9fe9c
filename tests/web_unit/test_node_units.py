"""The page's JavaScript unit tests (web/tests/*.test.js, Node's test runner) run under pytest."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
JS_TESTS = sorted((REPO / "web" / "tests").glob("*.test.js"))


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        reason = "Node.js is not installed (apt-get install nodejs)"
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(f"{reason} (CI is set: failing instead of skipping)", pytrace=False)
        pytest.skip(reason)
    return node


def test_there_are_js_unit_tests() -> None:
    """The JS unit test files exist (a missing directory must not pass as zero failures)."""
    names = {path.name for path in JS_TESTS}
    assert {"clock.test.js", "countdown.test.js"} <= names, names


@pytest.mark.parametrize("path", JS_TESTS, ids=lambda path: path.name)
def test_js_unit_tests_pass(path: Path) -> None:
    """Every test in the file passes under `node --test`, and the file holds at least one."""
    result = subprocess.run(
        [_node(), "--test", "--test-reporter=tap", str(path)],
        cwd=REPO / "web",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    passed = re.search(r"^# pass (\d+)", output, re.MULTILINE)
    assert result.returncode == 0, output[-6000:]
    assert passed is not None, output[-2000:]
    assert int(passed.group(1)) > 0, output[-2000:]
