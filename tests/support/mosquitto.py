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
    """``mosquitto -c <config written here>`` on a free loopback port; stop() kills it."""

    def __init__(self, config_extra: str = "", *, port: int | None = None) -> None:
        """Nothing runs until :meth:`start`."""
        self.port = port if port is not None else free_port()
        self.config_extra = config_extra
        self.dir = Path(tempfile.mkdtemp(prefix="mosquitto-test-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<port>``."""
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where the broker logs (errors, warnings, notices)."""
        return self.dir / "mosquitto.log"

    def start(self, timeout_s: float = 10.0) -> MosquittoProcess:
        """Write the config, start the broker, return once it accepts connections."""
        extra = self.config_extra
        if "allow_anonymous" not in extra:
            extra += "\nallow_anonymous true\n"
        if os.geteuid() == 0 and "\nuser " not in f"\n{extra}":
            # As root, Mosquitto would switch to the "mosquitto" user, which can read neither
            # the private temporary directory nor a test's password file.
            extra += "\nuser root\n"
        config = self.dir / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "persistence false\n"
            f"log_dest file {self.log_path}\n"
            f"{extra}\n",
            encoding="utf-8",
        )
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                log = self.log_path.read_text() if self.log_path.exists() else ""
                self.process = None
                raise RuntimeError(f"mosquitto exited at start:\n{log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"mosquitto did not listen on {self.port}") from None
                time.sleep(0.01)  # polling interval of the port probe, not a synchronisation

    def stop(self) -> None:
        """Kill the broker (no clean shutdown: clients see the connection drop) and wait."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def restart(self) -> None:
        """Kill it and start it again on the same port."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: the broker hangs with its sockets open."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def close(self) -> None:
        """Stop and remove the temporary directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> MosquittoProcess:
        """Start it."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop it and clean up."""
        self.close()
