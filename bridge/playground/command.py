"""``bridge playground`` and ``bridge demo --web``: the simulation, the page's server, and the wait
for Ctrl-C. The demo variant plays the terminal demo's conversation on the page once someone opens it."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Final

from bridge.demo import Simulation, log_to_file, play_script, simulation
from bridge.playground.server import Playground, listen
from bridge.sim.coder_state import Generation
from bridge.tasks import scoped_task

GENERATION: Final[Generation] = "v2"
"""The Coder the playground runs: the promoted Chats API, where an agent can stop to ask a question."""


async def run_playground(*, port: int, speed: float, prompt: str | None = None) -> int:
    """Serve the page on 127.0.0.1:``port`` until SIGINT or SIGTERM, then 0; 1 when the port cannot
    be had. With ``prompt``, the demo's conversation plays once a page is open."""
    try:
        listener = listen(port)
    except OSError as exc:
        print(f"bridge: cannot serve the playground on 127.0.0.1:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    logfile = log_to_file("playground")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with listener:
        async with simulation(speed=speed, generation=GENERATION) as sim:
            playground = Playground(sim, listener)
            await playground.start()
            try:
                print(f"The bridge's log is in {logfile}")
                print(f"Playground: {playground.url}  (open it in a browser; Ctrl-C stops it)", flush=True)
                if prompt is None:
                    await stop.wait()
                else:
                    async with scoped_task("playground:demo", _demo(sim, playground, prompt, logfile)):
                        await stop.wait()
            finally:
                await playground.stop()
    return 0


async def _demo(sim: Simulation, playground: Playground, prompt: str, logfile: Path) -> None:
    """Play the demo's conversation for the first person who opens the page."""
    await playground.visited.wait()
    try:
        await play_script(sim.slack, sim.coder, prompt)
    except TimeoutError as exc:
        print(f"demo failed: {exc} (the bridge's log is in {logfile})", file=sys.stderr)
