"""Child processes of a benchmark run: pinned, line-controlled, measured, always stopped.

Every child gets a CPU (``os.sched_setaffinity`` before exec), and talks over stdin/stdout in
lines (``READY``/``RESULT`` from the C programs, ``PUBLISHING``/``PUBLISHED`` from the publisher).
A reader thread per child queues its lines so the orchestrator can wait for one with a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def proc_rss(pid: int) -> int:
    """Resident set size of a process in bytes, from /proc (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            pages = int(statm.read().split()[1])
    except OSError:
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


class Child:
    """One pinned child process with line I/O."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        cpu: int,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.name = name
        cpus = {cpu}

        def pin() -> None:
            os.sched_setaffinity(0, cpus)

        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            preexec_fn=pin,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if len(self.stderr) < 200:
                self.stderr.append(line.rstrip("\n"))

    def expect(self, prefix: str, timeout_s: float) -> dict[str, Any]:
        """Wait for a line starting with ``prefix``; its JSON tail (or {}) is returned."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"{self.name}: no {prefix} within {timeout_s:.0f} s; "
                    f"stderr: {' | '.join(self.stderr[-5:])}"
                )
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    raise RuntimeError(
                        f"{self.name} exited ({self.proc.returncode}) before {prefix}; "
                        f"stderr: {' | '.join(self.stderr[-8:])}"
                    ) from None
                continue
            if line.startswith(prefix):
                tail = line[len(prefix) :].strip()
                parsed: dict[str, Any] = json.loads(tail) if tail.startswith("{") else {}
                return parsed

    def say(self, line: str) -> None:
        """Write a control line to the child's stdin."""
        if self.proc.poll() is None and self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.write(line + "\n")
                self.proc.stdin.flush()

    def cpu_s(self) -> float:
        """User + system CPU seconds so far."""
        return proc_cpu_s(self.proc.pid)

    def rss(self) -> int:
        """Resident set size, bytes."""
        return proc_rss(self.proc.pid)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; idempotent."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()


def core_busy() -> list[tuple[int, int]]:
    """Per CPU (busy jiffies, total jiffies) from /proc/stat."""
    out: list[tuple[int, int]] = []
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith("cpu") and line[3].isdigit():
                values = [int(v) for v in line.split()[1:]]
                idle = values[3] + values[4]
                out.append((sum(values) - idle, sum(values)))
    return out


def busy_fraction(before: list[tuple[int, int]], after: list[tuple[int, int]], cpu: int) -> float:
    """Share of time ``cpu`` was busy (user, system, irq, softirq) between two samples."""
    busy = after[cpu][0] - before[cpu][0]
    total = after[cpu][1] - before[cpu][1]
    return busy / total if total else 0.0
