"""Command line: ``bridge serve | demo | migrate | doctor`` (see ``interface.md``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from bridge import __version__
from bridge.app import Bridge, StartupError
from bridge.coder.errors import CoderError
from bridge.collector import CollectorPacing
from bridge.config import ConfigError, Settings, load_settings
from bridge.db.engine import Database
from bridge.db.migrate import upgrade
from bridge.logs import configure

log = logging.getLogger("bridge")

DEFAULT_PROMPT = "fix the login bug"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bridge", description="Drive Coder Agents from Slack threads.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.epilog = "Without a command: `serve` when Slack or Coder credentials are set, else `demo`."
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="run the bridge (HTTP events or Socket Mode)")
    demo = commands.add_parser("demo", help="run the bridge against built-in Slack and Coder simulators")
    demo.add_argument("--prompt", default=DEFAULT_PROMPT, help="what to ask the agent")
    demo.add_argument("--speed", type=float, default=1.0, help="playback speed of the simulated agent")
    commands.add_parser("migrate", help="apply database migrations and exit")
    commands.add_parser("doctor", help="check configuration, Slack and Coder, and say how to fix problems")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bridge`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args.prompt, args.speed)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return 2
    if args.command is None and not settings.has_credentials():
        print(
            "No Slack or Coder credentials are set: playing the built-in demo (`bridge serve` runs for real)."
        )
        return _demo(DEFAULT_PROMPT, 1.0)
    configure(settings.log_level, settings.log_format, settings.secrets())
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    if args.command == "doctor":
        from bridge.doctor import run_doctor

        return asyncio.run(run_doctor(settings))
    try:
        settings.require_serve()
    except ConfigError as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(serve(settings))


def _demo(prompt: str, speed: float) -> int:
    from bridge.demo import run_demo  # the simulators load only when the demo runs

    return asyncio.run(run_demo(prompt=prompt, speed=speed))


async def _migrate(settings: Settings) -> int:
    db = Database(settings.database_url)
    try:
        await upgrade(db)
    except Exception as exc:
        print(f"bridge: migration failed: {exc}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
    print("database is up to date")
    return 0


async def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT, then shut down cleanly (exit 0)."""
    bridge = Bridge(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await bridge.start()
    except (StartupError, CoderError) as exc:
        print(f"bridge: cannot start: {exc}", file=sys.stderr)
        await bridge.stop()
        return 1
    pacing = CollectorPacing()  # in serve only: a test process starts many bridges
    pacing.start()
    await stop.wait()
    log.info("signal received; shutting down")
    await bridge.stop()
    await pacing.stop()
    return 0
