"""The simulated city for the browser tests, as a process that takes fault commands on stdin.

``python -m tests.browser.sim_harness --broker mqtt://127.0.0.1:PORT [--seed N]`` runs all 235
controllers (:class:`simulator.controllers.Simulator`), prints ``ready`` once every controller is
connected, then obeys one command per line and answers ``ok`` (or ``error: ...``):

    drop ID          cut the controller's connection (its Will marks it offline)
    resume ID        reconnect it
    silence ID       stay connected, publish nothing (the gateway marks it stale)
    speak ID         publish again
    mode ID MODE     normal, flash, dark, manual, preempt, fault
    quit

A process of its own so the synchronous Playwright tests need no event loop of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from signal_gateway.core.registry import load_registry
from signal_gateway.settings import BrokerURL
from simulator.controllers import Simulator


def apply(sim: Simulator, words: list[str]) -> str:
    """Run one command; the answer line."""
    match words:
        case ["drop", iid]:
            sim.drop(iid)
        case ["resume", iid]:
            sim.resume(iid)
        case ["silence", iid]:
            sim.silence(iid, True)
        case ["speak", iid]:
            sim.silence(iid, False)
        case ["mode", iid, mode]:
            sim.set_mode(iid, mode)
        case _:
            return f"error: unknown command {' '.join(words)!r}"
    return "ok"


async def main(argv: list[str] | None = None) -> int:
    """Run the simulator until ``quit`` or end of input."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--intersections", default="intersections.yaml")
    args = parser.parse_args(argv)
    url = BrokerURL.parse(args.broker)
    sim = Simulator(load_registry(args.intersections), url.host, url.port, seed=args.seed)
    async with sim:
        print("ready", flush=True)
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            words = line.split()
            if not line or words == ["quit"]:
                break
            if not words:
                continue
            try:
                answer = apply(sim, words)
            except (KeyError, ValueError) as exc:
                answer = f"error: {exc}"
            print(answer, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
