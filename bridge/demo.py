"""``bridge demo``: the real bridge against the built-in Slack and Coder simulators, on loopback.

No credentials and no network: both simulators run in this process on free local ports, the bridge
is configured exactly as an operator would configure it (their URLs, tokens and signing secret), and
a scripted user mentions the bot, waits for the agent's answer, then sends a follow-up, to which the
agent answers with a question that the user answers by clicking one of its buttons; the agent's last
answer attaches a test report that the bridge posts back into the thread. The Slack
thread is printed as it changes: new messages appear, streamed replies grow in place. Only the
conversation reaches the terminal: the bridge's log goes to a file the demo names, so a warning never
lands in the middle of a reply. The simulated Slack app subscribes to the events ``manifest.yml``
asks for, as a correctly installed app does.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from bridge.app import Bridge
from bridge.config import Settings
from bridge.logs import configure
from bridge.sim.coder import CoderSim
from bridge.sim.coder_state import Generation
from bridge.sim.scenarios import CANNED, regression_test
from bridge.sim.slack import SlackSim
from bridge.slack.blocks import QUESTION_MARK, ButtonAction, is_outcome
from bridge.slack.scopes import REQUIRED_EVENTS
from bridge.tasks import scoped_task

FOLLOW_UP = "Thanks! Please also add a regression test for it."
_TOKEN = "sim-demo-token"


class ThreadPrinter:
    """Prints a simulated Slack thread as a user watching it would see it change."""

    def __init__(self, slack: SlackSim, channel: str, out: Callable[[str], None] = print) -> None:
        self._slack = slack
        self._channel = channel
        self._shown: dict[str, str] = {}
        self._last: str | None = None
        self._out = out

    def refresh(self, thread_ts: str) -> None:
        """Print what changed: new messages in full, a growing last message by its new tail only."""
        for message in self._slack.thread(self._channel, thread_ts):
            text = message.visible_text + "".join(f"\n📎 {f.get('name')}" for f in message.files)
            before = self._shown.get(message.ts)
            if before == text:
                continue
            who = "bot" if message.bot_id else self._slack.workspace.display_name(message.user)
            if before is None:
                self._out(f"\n\n{who}: {text}")
                self._last = message.ts
            elif message.ts == self._last and text.startswith(before):
                self._out(text[len(before) :])
            else:
                first, *rest = text.splitlines() or [""]
                self._out(f"\n  ✎ {who} edited a message: {first}{' …' if rest else ''}")
                self._last = None
            self._shown[message.ts] = text


@dataclass(frozen=True)
class Simulation:
    """The real bridge and the two simulators it is wired to."""

    slack: SlackSim
    coder: CoderSim
    bridge: Bridge


def log_to_file(name: str) -> Path:
    """Send the bridge's log to a file named for this process, so only the conversation (or the
    playground's address) reaches the terminal; returns the file to name to the person."""
    log = Path(tempfile.gettempdir()) / f"bridge-{name}-{os.getpid()}.log"
    configure("INFO", "text", file=log)
    return log


@asynccontextmanager
async def simulation(*, speed: float = 1.0, generation: Generation = "v2") -> AsyncIterator[Simulation]:
    """Start both simulators and the bridge configured for them exactly as an operator would
    configure it for Slack and Coder (their URLs, tokens and signing secret); stop all three after.

    ``speed`` plays the scripted agent faster and scales Slack's rate limits (and the bridge's
    budget for them) by the same factor, so a faster run is the same run, only shorter.
    """
    with tempfile.TemporaryDirectory(prefix="bridge-demo-") as workdir:
        async with (
            CoderSim(
                tokens={_TOKEN: "alice"},
                generation=generation,
                part_interval=0.04 / speed,
                start_delay=0.3 / speed,
                scripts={**CANNED, FOLLOW_UP: regression_test},
            ) as coder,
            SlackSim(subscriptions=REQUIRED_EVENTS, time_scale=1.0 / speed) as slack,
        ):
            settings = Settings(
                slack_bot_token=SecretStr(slack.bot_token),
                slack_signing_secret=SecretStr(slack.signing_secret),
                slack_api_url=slack.api_url,
                coder_url=coder.url,
                coder_session_token=SecretStr(_TOKEN),
                database_url=f"sqlite:///{workdir}/demo.db",
                host="127.0.0.1",
                port=0,
                edit_interval=1.0 / speed,
                slack_rate_scale=speed,
                slack_file_hosts="127.0.0.1",  # where the simulated Slack serves attached files
            )
            bridge = Bridge(settings)
            try:
                await bridge.start()
                slack.event_url = f"http://127.0.0.1:{bridge.port}/slack/events"
                yield Simulation(slack=slack, coder=coder, bridge=bridge)
            finally:
                await bridge.stop()


async def run_demo(*, prompt: str, speed: float = 1.0) -> int:
    """Play the scripted conversation; 0 when the thread ended with the agent's full answers."""
    log = log_to_file("demo")
    print(f"The bridge's log is in {log}")
    async with simulation(speed=speed) as sim:
        slack, coder = sim.slack, sim.coder
        print(f"Simulated Slack at {slack.api_url}, Coder at {coder.url}, bridge on port {sim.bridge.port}")
        printer = ThreadPrinter(slack, slack.general, lambda s: print(s, end="", flush=True))
        try:
            root = await play_script(slack, coder, prompt, on_change=printer.refresh)
        except TimeoutError as exc:
            print(f"\n\ndemo failed: {exc} (the bridge's log is in {log})", file=sys.stderr)
            return 1
        print("\n\nThe thread as it stands:\n")
        print(slack.render_thread(slack.general, root))
        print("\nDemo finished: every reply of the agent is in the thread.")
    return 0


async def play_script(
    slack: SlackSim, coder: CoderSim, prompt: str, *, on_change: Callable[[str], None] = lambda _: None
) -> str:
    """Alice mentions the bot with ``prompt`` and, once answered, sends ``FOLLOW_UP``; waits for the
    agent's answer to both and returns the thread's ts. ``on_change`` is shown the thread on every change."""
    root = await slack.user_says(slack.alice, slack.general, f"<@{slack.bot_user_id}> {prompt}")
    await _watch_turn(slack, coder, lambda: on_change(root), root, turns=1)
    await slack.user_says(slack.alice, slack.general, FOLLOW_UP, thread_ts=root)
    await _answer_the_question(slack, coder, lambda: on_change(root), root)
    await _watch_turn(slack, coder, lambda: on_change(root), root, turns=2, files=1)
    return root


async def _watch_turn(
    slack: SlackSim, coder: CoderSim, refresh: Callable[[], None], root: str, *, turns: int, files: int = 0
) -> None:
    """Print the thread until the agent finished ``turns`` turns, Slack shows its last reply and
    ``files`` files the agent attached, and the requester was told."""

    def finished() -> bool:
        refresh()
        chats = [c for c in coder.chats.values() if c.labels.get("slack_thread") == root]
        if len(chats) != 1 or chats[0].status != "waiting":
            return False
        replies = [m for m in chats[0].messages if m["role"] == "assistant"]
        texts = [m.visible_text for m in slack.thread(slack.general, root)]
        users = [m for m in chats[0].messages if m["role"] == "user"]
        told = sum(1 for text in texts if is_outcome(text))  # the requester's "done" mention
        posted = sum(len(m.files) for m in slack.thread(slack.general, root))
        shown = bool(replies) and _text(replies[-1]) in texts and posted >= files
        return len(users) >= turns and shown and told >= turns

    await wait_either(slack, coder, finished, timeout=60)


async def _answer_the_question(
    slack: SlackSim, coder: CoderSim, refresh: Callable[[], None], root: str
) -> None:
    """Wait for the agent's question and click its first answer, as the user would."""

    def asked() -> str | None:
        refresh()
        return next(
            (
                m.ts
                for m in slack.thread(slack.general, root)
                if m.bot_id
                and m.visible_text.startswith(QUESTION_MARK)
                and m.blocks
                and m.blocks[-1]["type"] == "actions"
            ),
            None,
        )

    await wait_either(slack, coder, lambda: asked() is not None, timeout=60)
    ts = asked()
    assert ts is not None
    await slack.click(slack.alice, slack.general, ts, f"{ButtonAction.QUESTION_ANSWER}:0")
    print(f"\n\n{slack.workspace.display_name(slack.alice)} clicked the first answer.", end="", flush=True)


async def wait_either(
    slack: SlackSim, coder: CoderSim, predicate: Callable[[], bool], timeout: float
) -> None:
    """Wait until ``predicate`` holds, re-checking it whenever either simulator's state changes."""
    async with (
        scoped_task("demo:slack-wait", slack.wait_for(predicate, timeout)) as on_slack,
        scoped_task("demo:coder-wait", coder.wait_for(predicate, timeout)) as on_coder,
    ):
        done, _ = await asyncio.wait((on_slack, on_coder), return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()


def _text(message: dict[str, object]) -> str:
    content = message.get("content") or []
    assert isinstance(content, list)
    return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
