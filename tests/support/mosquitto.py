"""A real Mosquitto broker per test: free port, a config the test writes, killed afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout_s: float = 10.0, host: str = "127.0.0.1") -> None:
    """Poll until something accepts TCP connections on the port (no fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listens on {host}:{port} after {timeout_s} s"
                ) from None
            time.sleep(0.02)


class MosquittoProcess:
    """``mosquitto -c <written config>`` on a free loopback port."""

    def __init__(self, config_extra: str = "", *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sg-mosquitto-"))
        self.config_extra = config_extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker URL for settings and the simulator."""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> MosquittoProcess:
        """Write the config, start the broker, wait until it accepts connections."""
        conf = self.dir / "mosquitto.conf"
        extra = self.config_extra
        listener = f"listener {self.port} 127.0.0.1\n"
        if "allow_anonymous" not in extra:
            extra += "\nallow_anonymous true\n"
        conf.write_text(
            f"{listener}persistence false\nlog_dest file {self.dir / 'log'}\n"
            f"log_type error\nlog_type warning\n{extra}\n"
        )
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        wait_for_port(self.port)
        return self

    def pause(self) -> None:
        """SIGSTOP: the broker hangs with its sockets open."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause``."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Kill the broker and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def restart(self) -> None:
        """Kill and start again on the same port."""
        self.stop()
        self.start()

    def __enter__(self) -> MosquittoProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
