"""The control channel against a real Mosquitto: in process, and with the simulator in its own."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from signal_gateway.core.model import Mode
from signal_gateway.core.registry import Registry
from signal_gateway.testing import status_payload
from simulator.cli import add_arguments, add_fault_arguments, build_simulator, run_fault
from simulator.control import (
    CONTROL_TOPIC,
    OPS,
    Command,
    ControlError,
    NoSimulatorError,
    send_command,
)
from simulator.controllers import Simulator
from tests.conftest import REPO as ROOT
from tests.simulator.test_controllers import Received, Recorder, report
from tests.support.mosquitto import MosquittoProcess, free_port

pytestmark = pytest.mark.broker

TIMEOUT = 10.0
IDS = ["YT001", "YT002"]
ACKS = "simulator/control/ack"


@pytest.fixture
async def recorder(mosquitto: MosquittoProcess) -> AsyncIterator[Recorder]:
    """A subscriber to signals/#, connected before any controller."""
    async with Recorder(mosquitto.port) as rec:
        yield rec


@pytest.fixture
async def sim(
    mosquitto: MosquittoProcess, registry: Registry, recorder: Recorder
) -> AsyncIterator[Simulator]:
    """YT001 and YT002 at speed 10, connected, the control channel subscribed."""
    simulator = Simulator(registry, "127.0.0.1", mosquitto.port, seed=1, speed=10, only=IDS)
    await simulator.start()
    try:
        async with asyncio.timeout(TIMEOUT):
            await simulator.ready.wait()
            await simulator.control_ready.wait()
        yield simulator
    finally:
        await simulator.stop()


def wills(recorder: Recorder, iid: str) -> list[Received]:
    """The Last Wills (offline, no ts_ms) the broker published for ``iid``."""
    return [m for m in recorder.status(iid) if m.payload == status_payload(False)]


def modes(recorder: Recorder, iid: str) -> list[Mode]:
    """The mode of every SPaT report of ``iid`` received so far."""
    return [report(m).mode for m in recorder.spat(iid)]


async def test_drop_over_the_channel_makes_the_broker_publish_the_will(
    sim: Simulator, mosquitto: MosquittoProcess, recorder: Recorder
) -> None:
    """{"op":"drop"} is acknowledged, then the Will appears on signals/YT001/status."""
    ack = await send_command(mosquitto.url, {"op": "drop", "id": "YT001"})
    assert ack == {"ok": True, "op": "drop", "id": "YT001", "ref": ack["ref"]}
    assert isinstance(ack["ref"], str)
    assert not sim.connected("YT001")
    await recorder.wait_for(lambda _ms: bool(wills(recorder, "YT001")))
    assert wills(recorder, "YT002") == []
    ack = await send_command(mosquitto.url, Command("resume", "YT001"))
    assert ack["ok"] is True
    await sim.wait_connected("YT001")


async def test_mode_flash_over_the_channel_reaches_the_next_report(
    sim: Simulator, mosquitto: MosquittoProcess, recorder: Recorder
) -> None:
    """After the answer to {"op":"mode","mode":"flash"} the next SPaT says mode flash."""
    await recorder.wait_for(lambda _ms: bool(recorder.spat("YT002")))
    assert set(modes(recorder, "YT002")) == {Mode.NORMAL}
    ack = await send_command(mosquitto.url, {"op": "mode", "id": "YT002", "mode": "flash"})
    assert ack["ok"] is True
    seq = sim.seq("YT002")  # reports from here on were rendered after the mode was set

    def after() -> list[Received]:
        return recorder.from_seq("YT002", seq)

    await recorder.wait_for(lambda _ms: len(after()) >= 2)
    assert [report(m).mode for m in after()[:2]] == [Mode.FLASH, Mode.FLASH]
    assert all(report(m).mode is Mode.NORMAL for m in recorder.spat("YT001"))


async def test_bad_commands_get_an_error_answer_and_the_simulator_goes_on(
    sim: Simulator, mosquitto: MosquittoProcess
) -> None:
    """An invalid command and a payload that is not JSON are answered with why; nothing breaks."""
    ack = await send_command(mosquitto.url, {"op": "mode", "id": "YT001", "mode": "blink"})
    assert ack["ok"] is False
    assert isinstance(ack["error"], str)
    assert ack["error"].startswith("mode: ")
    assert '"blink"' in ack["error"]
    async with Recorder(mosquitto.port, ACKS) as answers:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as raw:
            await raw.publish(CONTROL_TOPIC, b"drop YT001", qos=1)
        await answers.wait_for(lambda ms: bool(ms))
    garbage = json.loads(answers.messages[0].payload)
    assert garbage["ok"] is False
    assert garbage["ref"] is None
    assert "not JSON" in garbage["error"]
    assert sim.connected("YT001")
    ack = await send_command(mosquitto.url, {"op": "silence", "id": "YT001"})
    assert ack["ok"] is True


async def test_unknown_id_gets_an_error_answer(sim: Simulator, mosquitto: MosquittoProcess) -> None:
    """A controller this simulator does not run is refused by name; the others are untouched."""
    ack = await send_command(mosquitto.url, {"op": "drop", "id": "YT999"})
    assert ack["ok"] is False
    assert ack["id"] == "YT999"
    assert isinstance(ack["error"], str)
    assert "'YT999' is not run by this simulator" in ack["error"]
    assert "YT001, YT002" in ack["error"]
    assert all(sim.connected(iid) for iid in IDS)


async def test_a_restart_of_a_dropped_controller_is_refused(
    sim: Simulator, mosquitto: MosquittoProcess
) -> None:
    """A command the controller's state forbids is answered with the reason."""
    assert (await send_command(mosquitto.url, {"op": "drop", "id": "YT002"}))["ok"] is True
    ack = await send_command(mosquitto.url, {"op": "restart", "id": "YT002"})
    assert ack["ok"] is False
    assert (
        ack["error"] == "restart YT002: the controller is not connected (dropped: resume it first)"
    )


async def test_the_same_ref_is_carried_out_once(
    sim: Simulator, mosquitto: MosquittoProcess
) -> None:
    """A command re-sent with its ref (send_command's retry) is answered twice, applied once."""
    command = b'{"op":"duplicate","id":"YT001","count":2,"ref":"once"}'
    async with Recorder(mosquitto.port, ACKS) as answers:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as raw:
            await raw.publish(CONTROL_TOPIC, command, qos=1)
            await raw.publish(CONTROL_TOPIC, command, qos=1)
        await answers.wait_for(lambda ms: len(ms) == 2)
    assert answers.messages[0].payload == answers.messages[1].payload
    assert json.loads(answers.messages[0].payload)["ok"] is True
    assert [e.detail for e in sim.truth.events_for("YT001", "duplicate")] == ["2"]


async def test_every_operation_is_carried_out(sim: Simulator, recorder: Recorder) -> None:
    """Simulator.apply() wires every operation to its fault method (its event is recorded)."""
    steps = [
        (Command("silence", "YT001"), "silence", "on"),
        (Command("speak", "YT001"), "silence", "off"),
        (Command("mode", "YT001", mode="dark"), "mode", "dark"),
        (Command("skew", "YT001", ms=-5000), "skew", "-5000"),
        (Command("duplicate", "YT001", count=2), "duplicate", "2"),
        (Command("reorder", "YT001"), "reorder", ""),
        (Command("conflict", "YT001", on=False), "conflict", "off"),
        (Command("heal", "YT001"), "healed", ""),
        (Command("restart", "YT001"), "restart", ""),
        (Command("malformed", "YT001", kind="nan"), "malformed", "nan"),
        (Command("drop", "YT001"), "dropped", ""),
        (Command("resume", "YT001"), "resumed", ""),
    ]
    for command, kind, detail in steps:
        ack = await sim.apply(command)
        assert ack == {"ok": True, "op": command.op, "id": "YT001", "ref": None}, ack
        assert sim.truth.events_for("YT001", kind)[-1].detail == detail, command
    assert {command.op for command, _kind, _detail in steps} == set(OPS)
    await sim.wait_connected("YT001")


async def test_the_channel_comes_back_after_the_broker_restarts(
    sim: Simulator, mosquitto: MosquittoProcess, recorder: Recorder
) -> None:
    """The control connection reconnects and resubscribes like the controllers do."""
    mosquitto.restart()  # the new broker knows no subscription at all
    ack = await send_command(
        mosquitto.url, {"op": "mode", "id": "YT001", "mode": "fault"}, timeout_s=TIMEOUT
    )
    assert ack["ok"] is True
    assert sim.control_ready.is_set()


async def test_send_command_says_when_nobody_answers(mosquitto: MosquittoProcess) -> None:
    """No simulator on the topic: NoSimulatorError naming the topic and the broker."""
    with pytest.raises(NoSimulatorError) as caught:
        await send_command(mosquitto.url, {"op": "drop", "id": "YT001"}, timeout_s=0.5)
    assert str(caught.value) == (
        f"no simulator answered on simulator/control at {mosquitto.url} within 0.5 s: "
        "is one running?"
    )


async def test_send_command_says_when_the_broker_is_not_there() -> None:
    """Nothing listening on the broker's port: a ControlError, not a wait for an answer."""
    url = f"mqtt://127.0.0.1:{free_port()}"
    with pytest.raises(ControlError) as caught:
        await send_command(url, {"op": "drop", "id": "YT001"}, timeout_s=2)
    assert not isinstance(caught.value, NoSimulatorError)
    assert url in str(caught.value)


async def test_a_custom_topic_and_a_disabled_channel(
    mosquitto: MosquittoProcess, registry: Registry
) -> None:
    """control_topic= moves the channel; an empty one opens no control connection at all."""
    custom = Simulator(registry, "127.0.0.1", mosquitto.port, only=IDS, control_topic="lab/sim7")
    async with custom:
        await asyncio.wait_for(custom.control_ready.wait(), TIMEOUT)
        ack = await send_command(mosquitto.url, {"op": "heal", "id": "YT001"}, topic="lab/sim7")
        assert ack["ok"] is True
        assert f" as {custom.control_client_id} " in mosquitto.log_path.read_text()
    assert custom.control_client_id.startswith("sim-control-")
    silent = Simulator(registry, "127.0.0.1", mosquitto.port, only=IDS, control_topic="")
    async with silent:
        assert silent.control_topic is None
        with pytest.raises(NoSimulatorError):
            await send_command(mosquitto.url, {"op": "heal", "id": "YT001"}, timeout_s=0.5)
    assert f" as {silent.control_client_id} " not in mosquitto.log_path.read_text()
    with pytest.raises(ValueError, match="under the controllers' prefix"):
        Simulator(registry, "127.0.0.1", mosquitto.port, only=IDS, control_topic="signals/ctl")


def parse_cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_flags_set_the_control_channel(tmp_path: Path) -> None:
    """--control-topic reaches the Simulator; the URL's user:pass logs the channel in."""
    registry = ["--intersections", str(ROOT / "intersections.yaml")]
    passwords = tmp_path / "passwords"
    passwords.write_text("YT001:pw-1\n", encoding="utf-8")
    sim = build_simulator(
        parse_cli(
            [
                *("--broker", "mqtt://ops:secret@broker.example:1883", "--only", "YT001"),
                *("--credentials", str(passwords), "--control-topic", "lab/ctl", *registry),
            ]
        )
    )
    assert sim.control_topic == "lab/ctl"
    assert sim.control_credentials == ("ops", "secret")
    assert sim.credentials_for("YT001") == ("YT001", "pw-1")
    assert build_simulator(parse_cli(registry)).control_topic == CONTROL_TOPIC
    assert build_simulator(parse_cli(["--control-topic", "", *registry])).control_topic is None
    with pytest.raises(ValueError, match="under the controllers' prefix"):
        build_simulator(parse_cli(["--control-topic", "signals/x", *registry]))


def parse_fault(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_fault_arguments(parser)
    return parser.parse_args(argv)


async def test_run_fault_prints_the_answer_and_exits_accordingly(
    sim: Simulator, mosquitto: MosquittoProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    """0 and "ok: ..." when carried out, 1 when refused, 2 for bad words (nothing sent)."""
    broker = ["--broker", mosquitto.url]
    assert await run_fault(parse_fault(["conflict", "YT001", "on", *broker])) == 0
    assert capsys.readouterr().out == "ok: conflict YT001 on\n"
    assert sim.truth.events_for("YT001", "conflict")[-1].detail == "on"
    assert await run_fault(parse_fault(["mode", "YT404", "flash", *broker])) == 1
    assert "'YT404' is not run by this simulator" in capsys.readouterr().err
    assert await run_fault(parse_fault(["skew", "YT001", "5s", *broker])) == 2
    assert capsys.readouterr().err == "error: ms: '5s' is not an integer\n"
    assert sim.truth.events_for("YT001", "skew") == []


async def test_a_simulator_in_its_own_process_obeys_the_channel(
    mosquitto: MosquittoProcess, recorder: Recorder, tmp_path: Path
) -> None:
    """python -m simulator in a subprocess: send_command and the fault CLI reach it and answer."""
    log_path = tmp_path / "simulator.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "simulator", "--broker", mosquitto.url),
            *("--only", ",".join(IDS), "--seed", "1", "--speed", "10"),
            *("--intersections", str(ROOT / "intersections.yaml")),
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
    try:
        # The first command is re-sent until the starting simulator has subscribed.
        ack = await send_command(mosquitto.url, {"op": "drop", "id": "YT001"}, timeout_s=30)
        assert ack["ok"] is True, ack
        await recorder.wait_for(lambda _ms: bool(wills(recorder, "YT001")))
        fault = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "simulator", "fault", "mode", "YT002", "flash"),
            *("--broker", mosquitto.url),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(fault.communicate(), 30)
        assert (fault.returncode, out, err) == (0, b"ok: mode YT002 flash\n", b"")
        await recorder.wait_for(lambda _ms: Mode.FLASH in modes(recorder, "YT002"))
        ack = await send_command(mosquitto.url, {"op": "heal", "id": "YT003"})
        assert ack["ok"] is False
        assert "'YT003' is not run by this simulator" in str(ack["error"])
        process.terminate()
        assert await asyncio.wait_for(process.wait(), TIMEOUT) == 0
    finally:
        if process.returncode is None:
            process.kill()
            with contextlib.suppress(ProcessLookupError):
                await process.wait()
    log_text = log_path.read_text()
    assert "control channel: commands on simulator/control" in log_text
    assert "refused: id: 'YT003'" in log_text
    assert "Traceback" not in log_text
