"""The scripted conversations every fault scenario plays, and the agent that answers them.

Three threads run at once. Each starts with a mention and has two or three follow-ups; some are sent
while the agent is held busy (so Coder queues them), the others once the previous answer is shown.
The agent answers with several messages per turn, tool calls, code blocks, and one reply long enough
to be split over two Slack messages. Everything the agent says depends only on the prompt, so an
undisturbed run and a disturbed one must end with the same threads.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bridge.sim.coder_agent import Gate, Step, Text, ToolCall
from bridge.sim.scenarios import fix_login_bug

_MARK = re.compile(r"\(#(\d+)\.(\d+)\)")


@dataclass(frozen=True)
class Turn:
    """One message of a person; ``queued``: sent while the agent is still busy with the previous turn."""

    text: str
    queued: bool = False


def _prompt(thread: int, turn: int, text: str) -> str:
    """A prompt carrying its place in the script, so the agent knows which answer to give."""
    return f"{text} (#{thread}.{turn})"


PLANS: tuple[tuple[Turn, ...], ...] = (
    (
        Turn(_prompt(0, 0, "fix the login bug")),
        Turn(_prompt(0, 1, "also add a regression test"), queued=True),
        Turn(_prompt(0, 2, "thanks, open a pull request")),
    ),
    (
        Turn(_prompt(1, 0, "write the design notes for the session store")),
        Turn(_prompt(1, 1, "make the summary shorter"), queued=True),
        Turn(_prompt(1, 2, "and what about the tests?")),
        Turn(_prompt(1, 3, "ok, done for today")),
    ),
    (
        Turn(_prompt(2, 0, "why is CI red on main?")),
        Turn(_prompt(2, 1, "rerun the flaky job")),
        Turn(_prompt(2, 2, "pin the dependency instead")),
    ),
)
"""Per thread, its turns in order: the mention first, then the follow-ups."""


def _tool(name: str, command: str, output: str) -> ToolCall:
    return ToolCall(name, {"command": command}, {"output": output, "exit_code": 0})


def _design_notes() -> str:
    """About 14,000 characters with a code block in the middle: Slack needs two messages for it."""
    section = (
        "The session store keeps one row per login and expires it after the idle timeout; reads go "
        "through a small cache so that a burst of requests for one session costs one query. "
    )
    paragraphs = [f"Section {n}. " + section * 6 for n in range(1, 17)]
    code = "```python\n" + "\n".join(f"def step_{n}(store):\n    return store.touch({n})" for n in range(40))
    paragraphs.insert(12, code + "\n```")
    return "\n\n".join(paragraphs)


def _answer(thread: int, turn: int, prompt: str) -> list[Step]:
    """What the agent does for one turn of the script (its text depends on the prompt only)."""
    match (thread, turn):
        case (0, 0):
            return list(fix_login_bug(prompt))
        case (1, 0):
            return [Text("Here are the notes.\n\n" + _design_notes())]
        case (2, 0):
            return [
                Text("Looking at the last runs on main."),
                _tool("execute", "gh run list --branch main", "run 12 failed\nrun 11 failed\n"),
                _tool("execute", "gh run view 12 --log-failed", "test_upload timed out\n"),
                _tool("read_file", "tests/test_upload.py", "def test_upload(): ...\n"),
                Text("`test_upload` times out since the storage client was upgraded."),
            ]
        case (0, 1):
            return [
                _tool("edit_files", "tests/test_auth.py", "ok"),
                _tool("execute", "pytest tests/test_auth.py", "3 passed\n"),
                Text("Added `test_login_with_hashed_password`; all three auth tests pass."),
            ]
        case _:
            return [Text(f"Done: {prompt}.\n\n```\nstep {thread}.{turn} finished\n```")]


def make_agent(gates: dict[tuple[int, int], asyncio.Event]) -> Callable[[str], Sequence[Step]]:
    """The simulator's agent for the script; a turn with a gate waits for it before answering."""

    def agent(prompt: str) -> Sequence[Step]:
        found = _MARK.search(prompt)
        if found is None:
            return [Text(f"Echo: {prompt}")]
        thread, turn = int(found.group(1)), int(found.group(2))
        gate = gates.get((thread, turn))
        held: list[Step] = [Gate(gate)] if gate is not None else []
        return held + _answer(thread, turn, prompt)

    return agent


def gates_for_plans() -> dict[tuple[int, int], asyncio.Event]:
    """A gate for every turn whose next message must arrive while it is still running."""
    return {
        (thread, index - 1): asyncio.Event()
        for thread, plan in enumerate(PLANS)
        for index, turn in enumerate(plan)
        if turn.queued
    }
