"""A world per test: fresh Coder and Slack simulators on loopback and a real bridge wired to them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr

from bridge.app import Bridge
from bridge.coder.types import Capabilities, ChatId
from bridge.config import Settings
from bridge.db import repo
from bridge.demo import wait_either
from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import Gate, Step, Text
from bridge.sim.slack import SlackSim
from bridge.sim.slack_state import SimMessage
from bridge.slack.blocks import (
    is_card,
    is_diff_summary,
    is_outcome,
    is_question,
    is_removed_line,
    is_retry_line,
)
from tests.slack_text import shown

CODER_TOKEN = "sim-token-alice"
SIGNING_SECRET = "sim-signing-secret"
_CHAT_LINK = re.compile(r"/(?:agents|chat)/([0-9a-f-]{36})")


WAIT = 30.0
"""How long a test waits for a condition: generous, because CI runs four test workers on two cores
and a loaded machine can take seconds for what takes milliseconds alone. A passing test returns as
soon as its condition holds, so this costs nothing unless something is wrong."""


@dataclass
class World:
    """The simulators, the running bridge, and helpers that read like a person using Slack."""

    slack: SlackSim
    coder: CoderSim
    settings: Settings
    bridge: Bridge | None = None
    threads: list[str] = field(default_factory=list)
    capabilities: Capabilities = field(default_factory=Capabilities)
    """What the Coder generation under test can do, as the bridge found it: the one place where
    tests branch on the generation (they assert the documented behaviour where a feature is missing)."""

    @property
    def style(self) -> str:
        """The thread style (``BRIDGE_THREAD_STYLE``) of the bridge running now, or about to: it
        decides what a thread shows."""
        return (self.bridge.settings if self.bridge is not None else self.settings).thread_style

    def require(self, feature: str, value: object = True) -> None:
        """Skip a test of a feature the Coder generation under test lacks (a ``Capabilities`` field
        other than ``value``); what that generation does instead is asserted by its own tests
        (test_aisdk_backend)."""
        if getattr(self.capabilities, feature) != value:
            pytest.skip(f"this Coder generation's {feature.replace('_', ' ')} is not {value!r}")

    async def until_settled(self) -> None:
        """Wait until the bridge's start-up requests to Coder are over: where Coder has a chat watch,
        the watch is open and its catch-up listing done (it runs after ``start_bridge`` returns)."""
        if not self.capabilities.watch:
            return

        def caught_up() -> bool:
            paths = [r.path for r in self.coder.requests]
            opened = next((i for i, p in enumerate(paths) if p.endswith("/chats/watch")), None)
            return opened is not None and any(p.endswith("/chats") for p in paths[opened + 1 :])

        await self.until(caught_up)

    async def start_bridge(self, **overrides: Any) -> Bridge:
        """Start (or restart) the bridge on the same database and point Slack at it."""
        self.bridge = Bridge(self.settings.model_copy(update=overrides))
        await self.bridge.start()
        assert self.bridge.backend is not None
        self.capabilities = self.bridge.backend.capabilities
        self.slack.event_url = f"http://127.0.0.1:{self.bridge.port}/slack/events"
        return self.bridge

    async def stop_bridge(self) -> None:
        """Stop the bridge cleanly."""
        if self.bridge is not None:
            await self.bridge.stop()
            self.bridge = None

    async def mention(self, text: str, *, user: str | None = None, channel: str | None = None) -> str:
        """A person mentions the bot in a channel; returns the new thread's root ts."""
        ts = await self.slack.user_says(
            user or self.slack.alice, channel or self.slack.general, f"<@{self.slack.bot_user_id}> {text}"
        )
        self.threads.append(ts)
        return ts

    async def busy_on_first(self) -> tuple[str, asyncio.Event]:
        """A thread whose chat is busy on its first message, "first", until the returned gate opens
        (any other message is answered "Echo: …" at once); returns the thread's root ts and the gate."""
        gate = asyncio.Event()

        def script(prompt: str) -> list[Step]:
            return (
                [Text("Busy, "), Gate(gate), Text("done.")]
                if prompt == "first"
                else [Text(f"Echo: {prompt}")]
            )

        self.coder.agent = script
        root = await self.mention("first")
        await self.until(lambda: "Busy, " in self.bot_texts(root))
        return root, gate

    async def reply(
        self, root: str, text: str, *, user: str | None = None, channel: str | None = None
    ) -> str:
        """A person replies in a thread."""
        return await self.slack.user_says(
            user or self.slack.alice, channel or self.slack.general, text, thread_ts=root
        )

    def chat_of(self, root: str, channel: str | None = None) -> Any:
        """The Coder chat created for a thread, or None: found by its slack_thread label, or, where
        chats carry no labels, by the link in the thread's header."""
        if self.capabilities.labels:
            chats = [c for c in self.coder.chats.values() if c.labels.get("slack_thread") == root]
            assert len(chats) <= 1, f"{len(chats)} chats for one thread"
            return chats[0] if chats else None
        channels = [channel] if channel else list(self.slack.workspace.channels)
        texts = [t for c in channels for t in self.bot_texts(root, c)]
        links = {m.group(1) for t in texts for m in _CHAT_LINK.finditer(t)}
        assert len(links) <= 1, f"{len(links)} chats for one thread"
        return next((self.coder.chats.get(chat_id) for chat_id in links), None)

    async def labels(self, root: str, channel: str | None = None) -> dict[str, str]:
        """The labels of the thread's chat: as Coder keeps them, or as the bridge does for a Coder
        whose chats carry none."""
        chat = self.chat_of(root, channel)
        if self.capabilities.labels:
            return dict(chat.labels)
        assert self.bridge is not None
        async with self.bridge.db.unit() as session:
            stored = await repo.find_aisdk_chat(session, chat.id)
        assert stored is not None
        return dict(json.loads(stored.labels))

    async def queued(self, root: str) -> int:
        """How many follow-ups wait in the thread's chat: in Coder's queue, or in the bridge's."""
        chat = self.chat_of(root)
        if self.capabilities.queue == "coder":
            return len(chat.queue)
        assert self.bridge is not None
        async with self.bridge.db.unit() as session:
            return len(await repo.find_aisdk_follow_ups(session, ChatId(chat.id)))

    def bot_messages(self, root: str, channel: str | None = None) -> list[SimMessage]:
        """What the bot shows in a thread, in order."""
        return [m for m in self.slack.thread(channel or self.slack.general, root) if m.bot_id]

    def bot_texts(self, root: str, channel: str | None = None) -> list[str]:
        """The visible texts of the bot's messages in a thread (blocks read back as Markdown)."""
        return [shown(m) for m in self.bot_messages(root, channel)]

    def replies(self, root: str, channel: str | None = None) -> list[str]:
        """The agent's replies as the thread shows them: the bot's messages but the bridge's own lines."""
        return [
            t
            for t in self.bot_texts(root, channel)[1:]
            if not (
                is_card(t)
                or is_outcome(t)
                or is_diff_summary(t)
                or is_retry_line(t)
                or is_removed_line(t)
                or is_question(t)
            )
        ]

    def shows(self, root: str, text: str) -> bool:
        """Whether any bot message of the thread shows ``text`` (a reply, or a card's latest lines
        in the compact style)."""
        return any(text in t for t in self.bot_texts(root))

    def shown_replies(self, chat: Any) -> list[str]:
        """The texts of the chat's assistant messages this bridge's thread style shows as replies."""
        return assistant_texts(chat, style=self.style)

    def diff_summaries(self, root: str, channel: str | None = None) -> list[SimMessage]:
        """The thread's PR / diff summary messages (there should be at most one)."""
        return [m for m in self.bot_messages(root, channel) if is_diff_summary(m.visible_text)]

    def cards(self, root: str, channel: str | None = None) -> list[str]:
        """The turns' status cards in a thread."""
        return [t for t in self.bot_texts(root, channel) if is_card(t)]

    async def until(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        """Wait until ``predicate`` holds, re-checked whenever either simulator changes."""
        await wait_either(self.slack, self.coder, predicate, timeout)

    async def until_idle_and_shown(self, root: str, turns: int = 1, timeout: float = WAIT) -> None:
        """Wait until the chat finished ``turns`` turns and the thread shows every reply's final text."""

        def done() -> bool:
            chat = self.chat_of(root)
            if chat is None or chat.status != "waiting":
                return False
            if len(user_texts(chat)) < turns:
                return False
            texts = self.bot_texts(root)
            return all(t in texts for t in self.shown_replies(chat))

        await self.until(done, timeout)


def message_parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A simulated chat message's parts, in either generation's shape (G1/G2 keep parts in
    ``content``; the AI-SDK API keeps them in ``parts`` and ``content`` is a string)."""
    parts = message.get("content") if isinstance(message.get("content"), list) else message.get("parts")
    return list(parts or [])


def message_text(message: dict[str, Any]) -> str:
    """A simulated chat message's text parts joined."""
    return "".join(p.get("text", "") for p in message_parts(message) if p.get("type") == "text")


def user_texts(chat: Any) -> list[str]:
    """The texts of a simulated chat's user messages."""
    return [message_text(m) for m in chat.messages if m["role"] == "user"]


def assistant_texts(chat: Any, *, style: str = "full") -> list[str]:
    """The texts of a simulated chat's assistant messages (those with any text) that a thread in
    ``style`` shows as replies: all of them (full), or a turn's final one (compact: a message that
    calls a tool is a step, shown on the turn's card)."""
    replies = [m for m in chat.messages if m["role"] == "assistant"]
    if style == "compact":
        calls = ("tool-call", "tool-invocation")  # the AI-SDK API names a call a tool invocation
        replies = [m for m in replies if not any(p.get("type") in calls for p in message_parts(m))]
    texts = [message_text(m) for m in replies]
    return [t for t in texts if t.strip()]


def make_settings(slack: SlackSim, coder: CoderSim, database_url: str, **overrides: Any) -> Settings:
    """Settings an operator would write for these simulators, with timings shrunk for tests."""
    values: dict[str, Any] = {
        "slack_bot_token": SecretStr(slack.bot_token),
        "slack_signing_secret": SecretStr(SIGNING_SECRET),
        "slack_api_url": slack.api_url,
        "coder_url": coder.url,
        "coder_session_token": SecretStr(CODER_TOKEN),
        "database_url": database_url,
        "host": "127.0.0.1",
        "port": 0,
        "edit_interval": 0.05,
        "slack_rate_scale": 20.0,  # the Slack simulator runs at time_scale 0.05
        "reconnect_max_delay": 0.5,
        "home_debounce": 0.1,
        "shutdown_timeout": 5.0,
        "slack_file_hosts": "127.0.0.1",  # where the Slack simulator serves url_private
    }
    values.update(overrides)
    return Settings(**values)


POSTGRES_GENERATION = "v2"
"""The one Coder generation whose end-to-end tests also run on PostgreSQL. The bridge's storage code
is the same whatever generation it talks to, so running every generation on both databases would
triple the PostgreSQL time and test no more SQL; the newest generation covers it."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the PostgreSQL variants of generations other than ``POSTGRES_GENERATION``."""
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        redundant = params.get("database_url") == "postgres" and params.get("generation") not in (
            None,
            POSTGRES_GENERATION,
        )
        (dropped if redundant else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


THREAD_STYLES = {"experimental": "full", "v2": "full", "v2-late": "compact", "ai-sdk": "full"}
"""The thread style each generation's end-to-end tests run in: the default (compact) with the newest
Coder, the full style with the others, so both styles run every end-to-end test (tests that read a
turn's intermediate texts as messages of their own ask for ``full``)."""


@pytest.fixture(params=["experimental", "v2", "v2-late", "ai-sdk"])
def generation(request: pytest.FixtureRequest) -> str:
    """The Coder Chats API generation the simulator speaks (the bridge detects it)."""
    return str(request.param)


@pytest.fixture
async def world(database_url: str, generation: str) -> AsyncIterator[World]:
    """Simulators plus a started bridge for each Coder API generation, on SQLite (and PostgreSQL for one)."""
    async with (
        CoderSim(tokens={CODER_TOKEN: "alice"}, part_interval=0.002, generation=generation) as coder,  # type: ignore[arg-type]
        SlackSim(signing_secret=SIGNING_SECRET, time_scale=0.05) as slack,
    ):
        style = THREAD_STYLES[generation]
        settings = make_settings(slack, coder, database_url, thread_style=style)
        w = World(slack=slack, coder=coder, settings=settings)
        await w.start_bridge()
        try:
            yield w
        finally:
            await w.stop_bridge()


@pytest.fixture
async def sims() -> AsyncIterator[tuple[SlackSim, CoderSim]]:
    """Just the simulators, for tests that run the bridge as a separate process."""
    async with (
        CoderSim(tokens={CODER_TOKEN: "alice"}, part_interval=0.002) as coder,
        SlackSim(signing_secret=SIGNING_SECRET, time_scale=0.05) as slack,
    ):
        yield slack, coder


@pytest.fixture(autouse=True)
def _reaped_bridges() -> Iterator[None]:
    """Every test's leftover ``bridge serve`` processes are killed when it ends (see ``reap_bridges``)."""
    yield
    from tests.integration.processes import reap_bridges  # processes imports this module

    reap_bridges()


class _Said(logging.Handler):
    """Tells when a logger logs a line with ``words`` (what a test waits for)."""

    def __init__(self, words: str) -> None:
        super().__init__(logging.INFO)
        self.words = words
        self.said = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.words in record.getMessage():
            self.said.set()


@contextlib.asynccontextmanager
async def until_logged(logger_name: str, words: str) -> AsyncIterator[None]:
    """Run the block, then wait until logger ``logger_name`` of the bridge running in this process
    logs ``words``: for what happens out of the simulators' sight (after an acknowledgement, in the
    database)."""
    logger = logging.getLogger(logger_name)
    said, level = _Said(words), logger.level
    logger.addHandler(said)
    logger.setLevel(logging.INFO)
    try:
        yield
        await asyncio.wait_for(said.said.wait(), WAIT)
    finally:
        logger.removeHandler(said)
        logger.setLevel(level)
