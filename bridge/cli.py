"""Command line: ``bridge serve | demo | playground | migrate | doctor | rotate-keys`` (``interface.md``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError

from bridge import __version__
from bridge.app import Bridge, StartupError, open_intake
from bridge.coder.errors import CoderError
from bridge.collector import CollectorPacing
from bridge.config import ConfigError, Settings, encryption_keys, load_settings
from bridge.db.engine import Database
from bridge.db.migrate import upgrade
from bridge.logs import configure
from bridge.relay.cipher import TokenCipher
from bridge.relay.identity import rotate_tokens
from bridge.relay.installations import Installations
from bridge.relay.intake import tagging_began

log = logging.getLogger("bridge")

DEFAULT_PROMPT = "fix the login bug"
PLAYGROUND_PORT = 8000


def _port(text: str) -> int:
    """A TCP port number, 0 for any free one."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return port


def _speed(text: str) -> float:
    """A playback speed: a positive number, 1 for real time."""
    try:
        speed = float(text)
    except ValueError:
        speed = 0.0
    if not 0 < speed <= 100:
        raise argparse.ArgumentTypeError(f"{text!r} is not a speed (a number above 0, at most 100)")
    return speed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bridge", description="Drive Coder Agents from Slack threads.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.epilog = "Without a command: `serve` when Slack or Coder credentials are set, else `demo`."
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="run the bridge (HTTP events or Socket Mode)")
    demo = commands.add_parser("demo", help="run the bridge against built-in Slack and Coder simulators")
    demo.add_argument("--prompt", default=DEFAULT_PROMPT, help="what to ask the agent")
    demo.add_argument("--speed", type=_speed, default=1.0, help="playback speed of the simulated agent")
    demo.add_argument("--web", action="store_true", help="play it in the browser playground instead")
    demo.add_argument("--port", type=_port, default=PLAYGROUND_PORT, help="the playground's port, with --web")
    playground = commands.add_parser(
        "playground", help="try the bridge in a browser page that plays Slack, against the simulators"
    )
    playground.add_argument("--port", type=_port, default=PLAYGROUND_PORT, help="port on 127.0.0.1 (0: any)")
    playground.add_argument("--speed", type=_speed, default=1.0, help="playback speed of the simulated agent")
    commands.add_parser("migrate", help="apply database migrations and exit")
    commands.add_parser("doctor", help="check configuration, Slack and Coder, and say how to fix problems")
    commands.add_parser(
        "rotate-keys", help="re-encrypt every stored token with the newest BRIDGE_ENCRYPTION_KEY, then exit"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bridge`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "demo" and args.web:
        return _playground(args.port, args.speed, args.prompt)
    if args.command == "demo":
        return _demo(args.prompt, args.speed)
    if args.command == "playground":
        return _playground(args.port, args.speed, None)
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
    if args.command == "rotate-keys":
        return asyncio.run(_rotate_keys(settings))
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


def _playground(port: int, speed: float, prompt: str | None) -> int:
    from bridge.playground.command import run_playground  # the simulators load only when it runs

    return asyncio.run(run_playground(port=port, speed=speed, prompt=prompt))


async def _migrate(settings: Settings) -> int:
    db = Database(settings.database_url)
    try:
        before = await upgrade(db)
        if settings.intake_secret is not None:
            await open_intake(db, settings, before)
        elif tagging_began(before):
            print(
                "bridge: Slack events recorded before this upgrade and not handled yet cannot be tagged "
                "here (SLACK_SIGNING_SECRET or SLACK_APP_TOKEN is not set) and will not be replayed",
                file=sys.stderr,
            )
    except Exception as exc:
        print(f"bridge: migration failed: {exc}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
    print("database is up to date")
    return 0


async def _rotate_keys(settings: Settings) -> int:
    """Store every linked token again under the newest key, and say how many (never a token)."""
    if settings.encryption_key is None:
        print("bridge: BRIDGE_ENCRYPTION_KEY is not set: there are no keys to rotate", file=sys.stderr)
        return 2
    db = Database(settings.database_url)
    cipher = TokenCipher(encryption_keys(settings.encryption_key))
    try:
        rotation = await rotate_tokens(db, cipher)
        slack = await Installations(db, cipher).rotate()
    except DBAPIError as exc:
        print(
            f"bridge: cannot read the stored tokens ({type(exc.orig).__name__}); "
            "run `bridge migrate` first if this database is new",
            file=sys.stderr,
        )
        return 1
    finally:
        await db.dispose()
    print(
        f"stored tokens: {rotation.resealed} re-encrypted with the newest key, {rotation.current} already "
        f"current, {rotation.refused} refused (sealed for another person; they must link again), "
        f"{rotation.unreadable} unreadable (no configured key opens them; their owners must link again)"
    )
    if slack.resealed or slack.current or slack.refused or slack.unreadable:
        print(
            f"Slack installations' tokens: {slack.resealed} re-encrypted with the newest key, "
            f"{slack.current} already current, {slack.refused} refused (sealed for another workspace), "
            f"{slack.unreadable} unreadable (no configured key opens them; install the app there again)"
        )
    if rotation.unreadable == 0 and slack.unreadable == 0:
        print("no stored token needs an older key any more: it can be removed from BRIDGE_ENCRYPTION_KEY")
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
