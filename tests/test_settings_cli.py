"""Settings from the environment and flags; the CLI's exit codes and messages."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from signal_gateway.cli import main, port_free
from signal_gateway.settings import BrokerURL, SettingsError, load_settings

REPO = Path(__file__).resolve().parents[1]


def test_environment_overrides_defaults_and_flags_override_environment() -> None:
    """SIGNAL_GATEWAY_* beats the default; a flag beats the environment."""
    env = {"SIGNAL_GATEWAY_FLUSH_MS": "250", "SIGNAL_GATEWAY_PORT": "9000"}
    settings = load_settings({"port": 9100}, environ=env)
    assert settings.flush_ms == 250
    assert settings.port == 9100


def test_bad_environment_value_names_the_variable() -> None:
    """A non-number in a numeric variable is refused with the variable's name."""
    with pytest.raises(SettingsError, match="SIGNAL_GATEWAY_FLUSH_MS: 'soon' is not a number"):
        load_settings(environ={"SIGNAL_GATEWAY_FLUSH_MS": "soon"})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("flush_ms", 0, "flush_ms: 0 must be greater than 0"),
        ("port", 70000, "port: 70000 is not a TCP port"),
        ("log_level", "loud", "log_level: 'loud'"),
        ("broker", "http://x", "scheme 'http'"),
    ],
)
def test_bad_setting_is_refused_with_its_name(name: str, value: object, message: str) -> None:
    """Each out-of-range setting is refused, naming the setting and the value."""
    with pytest.raises(SettingsError, match=message):
        load_settings({name: value}, environ={})


def test_broker_url_parses_credentials_and_tls() -> None:
    """mqtt(s)://user:pass@host:port gives host, port, credentials; mqtts defaults to 8883."""
    url = BrokerURL.parse("mqtts://gate%40way:s3cret@broker.example")
    assert (url.host, url.port, url.username, url.password, url.tls) == (
        "broker.example",
        8883,
        "gate@way",
        "s3cret",
        True,
    )
    assert "s3cret" not in str(url)


def test_check_config_accepts_the_shipped_registry(capsys: pytest.CaptureFixture[str]) -> None:
    """check-config exits 0 and counts the intersections of the shipped file."""
    assert main(["check-config", str(REPO / "intersections.yaml")]) == 0
    assert "OK, 235 intersections" in capsys.readouterr().out


def test_check_config_reports_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config exits 2 and names entry, field and value for each problem."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "intersections:\n"
        "  - {id: YT001, name_zh: 甲, name_en: A, district: 芝罘区, lat: 10.0, lon: 121.4,\n"
        "     groups: [{sg: 1, approach: N, movement: diagonal}]}\n"
    )
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "YT001.lat: 10.0 is outside the city" in err
    assert "YT001.groups[0].movement: 'diagonal'" in err


def test_port_free_sees_a_taken_port() -> None:
    """port_free is False while something listens on the port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert port_free("127.0.0.1", sock.getsockname()[1]) is False


def test_serve_refuses_a_taken_port_with_a_clear_message() -> None:
    """serve on a port in use exits 2 saying so, instead of a traceback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "signal_gateway", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
    assert done.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr


def test_help_works_for_every_command() -> None:
    """--help prints usage for the command and each subcommand."""
    for args in ([], ["serve"], ["demo"], ["simulate"], ["check-config"], ["convert"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*args, "--help"])
        assert exit_info.value.code == 0


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("0", False), ("Off", False)])
def test_boolean_settings_read_the_usual_spellings(raw: str, value: bool) -> None:
    """SIGNAL_GATEWAY_EVENT_LOG_WRITER takes true/false, 1/0, on/off, yes/no."""
    settings = load_settings(environ={"SIGNAL_GATEWAY_EVENT_LOG_WRITER": raw})
    assert settings.event_log_writer is value


def test_boolean_setting_refuses_other_words() -> None:
    """A word that is not a truth value is refused, naming the variable."""
    with pytest.raises(SettingsError, match="SIGNAL_GATEWAY_EVENT_LOG_WRITER: 'maybe'"):
        load_settings(environ={"SIGNAL_GATEWAY_EVENT_LOG_WRITER": "maybe"})
