"""The scripted agent: the steps a script is made of, and the turn that plays them as chatd streams.

A script is a plain function from the latest user prompt to a list of steps, so demos, tests and
benchmarks describe an agent's behaviour as data. ``Turn`` turns the steps into what the real server
publishes (reference sections 4.3-4.4 and 5): transient ``message_part`` deltas while a step streams,
then persisted messages when it completes. It never touches chats or sockets; the engine binds its
output to one chat through ``TurnOutput``.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bridge.sim.coder_state import JsonDict, encode, part, timestamp

_WORD_BOUNDARY = re.compile(r"(?<=\s)(?=\S)")
_ARGS_DELTA_CHUNKS = 3


@dataclass(frozen=True)
class Text:
    """Assistant prose, streamed as text deltas of the simulator's ``chunk_words`` words each."""

    text: str


@dataclass(frozen=True)
class Reasoning:
    """Model reasoning, streamed like ``Text`` but as ``reasoning`` parts."""

    text: str


@dataclass(frozen=True)
class ToolCall:
    """One tool use, which also ends the current assistant message.

    Streams a few ``args_delta`` chunks and a final ``tool-call`` part with the full ``args``; then the
    assistant message (prose so far plus the call) is persisted, the tool "runs" for ``seconds``, and
    its result is streamed and persisted as a role ``tool`` message. Later prose starts a new message.
    """

    name: str
    args: Mapping[str, Any]
    result: Any
    is_error: bool = False
    seconds: float = 0.0


@dataclass(frozen=True)
class ClientToolCall:
    """The model calls a client-executed ("dynamic") tool, so the turn waits for the client (G2 only).

    The call streams and is persisted like a ``ToolCall``'s; then chatd does not run it but parks the
    chat in ``requires_action`` (chatstate EnterRequiresAction: status event, ``action_required``
    stream event naming the call, watch kind ``action_required``). The steps after this one are the
    model's continuation once the call is resolved: by the client's result (``POST
    /chats/{id}/tool-results``), or by a cancellation result when a person interrupts, sends a message
    with ``busy_behavior: interrupt``, or nobody answers within the simulator's ``action_timeout``
    (chatd's five minutes). Promoting a queued message instead cancels the call and starts a new turn.

    Coder parks a turn only for tools the chat's creator declared in ``unsafe_dynamic_tools`` (its CLI
    answers ``ask_user_question`` calls that reach it this way); a script plays a model that was
    offered such a tool, so the simulator takes the step's tool as declared. Generations without
    ``requires_action`` (G1, G0a) end the turn like a broken script.
    """

    name: str
    args: Mapping[str, Any]


@dataclass(frozen=True)
class ProposePlan:
    """In plan mode, the model proposes its plan: chatd's ``propose_plan`` tool (chattool
    proposeplan.go) reads the Markdown plan file the agent wrote, stores it as a chat file and
    answers ``{"ok": true, "path", "kind": "plan", "file_id", "media_type"}``; Coder's UI shows the
    file with an Implement button. The turn goes on after it (usually to a closing line)."""

    markdown: str
    path: str = "/home/coder/.coder/plans/PLAN.md"


@dataclass(frozen=True)
class Pause:
    """The model thinks silently for a while; the chat stays ``running``."""

    seconds: float


@dataclass(frozen=True)
class Gate:
    """Hold the turn until ``event`` is set, so a test decides exactly when a turn may go on."""

    event: asyncio.Event


@dataclass(frozen=True)
class Retry:
    """A ``retry`` event of the LLM call; the chat stays ``running`` (add a Pause for the backoff).

    Where retries restart the attempt (the late dialect, as the newest chatd does), what the step
    streamed so far and did not persist is void: the steps after the retry are the new attempt.
    """

    attempt: int
    delay_ms: int
    error: str


@dataclass(frozen=True)
class Fail:
    """The turn fails: an ``error`` event, then status ``error``; queued messages stay queued."""

    message: str
    kind: str = "generic"
    retryable: bool = False
    detail: str = ""
    """The provider's own words, shown next to the message (``ChatError.detail``)."""
    provider: str = ""


@dataclass(frozen=True)
class Attach:
    """The agent hands the user a workspace file with chatd's ``attach_file`` tool (coder/coder
    coderd/x/chatd/chattool/attachfile.go at 199bdad2): the call with ``path`` (and ``name`` when
    given) streams, the file is stored as a chat file, and the persisted assistant message carries
    the call and, after it, a ``file`` part naming the stored file (chatd's
    ``buildAssistantPartsForPersist`` promotes a tool result's attachments into the step's assistant
    message); then the tool's result, ``{ok, path, file_id, name, media_type, size}``."""

    path: str
    data: bytes
    media_type: str
    name: str = ""


@dataclass(frozen=True)
class Delegate:
    """The agent hands a task to a sub-agent and waits for its report (the newest source only):
    ``spawn_agent`` with ``title`` and ``prompt`` makes a child chat (``parent_chat_id`` set, the
    same owner) that plays ``steps`` as its own turn, and the result names it,
    ``{chat_id, title, status}``; then ``wait_agent`` with its ``chat_id`` returns once the child's
    turn ended, ``{chat_id, status, report}`` (the report is the child's last reply). Shapes as
    coder/coder's site stories and chatd tests show them (SubagentTool, subagentDescriptor.ts,
    TestWaitAgent*); UNCERTAIN: every other field chatd adds."""

    title: str
    prompt: str
    steps: Sequence[Step]
    wait: bool = True
    """Whether the agent waits for the sub-agent (``wait_agent``); else it goes on meanwhile."""


@dataclass(frozen=True)
class Summary:
    """What Coder's summary worker writes of the turn once it ended (the newest source only; a turn
    whose script names none gets none). Streams nothing."""

    text: str


Step = (
    Text
    | Reasoning
    | ToolCall
    | ClientToolCall
    | ProposePlan
    | Attach
    | Delegate
    | Pause
    | Gate
    | Retry
    | Fail
    | Summary
)
Script = Callable[[str], Sequence[Step]]


class TurnOutput(Protocol):
    """Where a turn's output goes; the engine implements it for one chat."""

    def part(self, role: str, body: JsonDict) -> None:
        """Publish (and buffer for snapshots) one transient ``message_part``."""

    def persist(self, role: str, content: list[JsonDict]) -> None:
        """Store a complete message and publish its ``message`` event."""

    def retry(self, payload: JsonDict) -> None:
        """Publish a ``retry`` event."""

    async def await_client(self, call: JsonDict) -> None:
        """Wait until a client resolved this persisted ``tool-call`` part (see ``ClientToolCall``)."""

    def store_file(self, name: str, media_type: str, data: bytes) -> str:
        """Store a chat file the chat's owner may download; its id."""

    def spawn(self, title: str, prompt: str, steps: Sequence[Step]) -> str:
        """Start a child chat playing ``steps``; its id."""

    async def await_child(self, chat_id: str) -> JsonDict:
        """Wait until the child chat's turn ended; its ``wait_agent`` result."""


class Turn:
    """One play of a script for one chat; it keeps the unsaved draft so an interrupt can persist it.

    ``retry_restarts``: a ``Retry`` voids the draft (the model call starts over), as the newest chatd
    does; otherwise the draft carries on through it, as the simulator's earlier generations always did.
    """

    def __init__(
        self, output: TurnOutput, *, part_interval: float, chunk_words: int, retry_restarts: bool = False
    ) -> None:
        self._output = output
        self._interval = part_interval
        self._chunk_words = chunk_words
        self._retry_restarts = retry_restarts
        self._draft: list[JsonDict] = []
        self.summary = ""
        """The summary the script named for the turn (``Summary``), empty when it named none."""

    def draft_content(self) -> list[JsonDict]:
        """The streamed but not yet persisted parts that carry content (copies)."""
        return [dict(p) for p in self._draft if p["type"] in ("tool-call", "file") or p["text"]]

    async def play(self, steps: Sequence[Step]) -> Fail | None:
        """Run the steps; the ``Fail`` that ended the turn, or None after a normal end."""
        for step in steps:
            if isinstance(step, Fail):
                # UNCERTAIN: chatd persists a step only when it completes, so a failure drops the draft.
                return step
            await self._play(step)
        self._flush()
        return None

    async def _play(self, step: Step) -> None:
        match step:
            case Text(text=text):
                await self._stream_prose("text", text)
            case Reasoning(text=text):
                await self._stream_prose("reasoning", text)
            case ToolCall():
                await self._call_tool(step)
            case ProposePlan(markdown=markdown, path=path):
                name = path.rsplit("/", 1)[-1]
                file_id = self._output.store_file(name, "text/markdown", markdown.encode())
                result = {
                    "ok": True,
                    "path": path,
                    "kind": "plan",
                    "file_id": file_id,
                    "media_type": "text/markdown",
                }
                await self._call_tool(ToolCall("propose_plan", {"path": path}, result))
            case ClientToolCall(name=name, args=args):
                await self._output.await_client(await self._stream_call(name, args))
            case Attach():
                await self._attach(step)
            case Delegate():
                await self._delegate(step)
            case Pause(seconds=seconds):
                await asyncio.sleep(seconds)
            case Gate(event=event):
                await event.wait()
            case Summary(text=text):
                self.summary = text
            case Retry():
                if self._retry_restarts:
                    self._draft = []
                self._output.retry(_retry_payload(step))

    async def _stream_prose(self, kind: str, text: str) -> None:
        draft = part(kind)
        self._draft.append(draft)
        for chunk in _word_chunks(text, self._chunk_words):
            await asyncio.sleep(self._interval)
            draft["text"] += chunk
            self._output.part("assistant", part(kind, text=chunk))

    async def _attach(self, step: Attach) -> None:
        """``attach_file``: the call, the stored file promoted into the assistant message, the result."""
        args = {"path": step.path, **({"name": step.name} if step.name else {})}
        call = await self._stream_call("attach_file", args, flush=False)
        name = step.name or step.path.rstrip("/").rsplit("/", 1)[-1]
        file_id = self._output.store_file(name, step.media_type, step.data)
        self._draft.append(part("file", media_type=step.media_type, name=name, file_id=file_id))
        self._flush()
        await asyncio.sleep(self._interval)
        ids = {"tool_call_id": call["tool_call_id"], "tool_name": "attach_file"}
        outcome = {"ok": True, "path": step.path, "file_id": file_id, "name": name}
        outcome.update(media_type=step.media_type, size=len(step.data))
        result = part("tool-result", **ids, result=outcome)
        self._output.part("tool", result)
        self._output.persist("tool", [result])

    async def _delegate(self, step: Delegate) -> None:
        """``spawn_agent``, then (unless told not to) ``wait_agent`` until the child chat's turn ended."""
        spawned = await self._stream_call("spawn_agent", {"title": step.title, "prompt": step.prompt})
        chat_id = self._output.spawn(step.title, step.prompt, step.steps)
        self._finish_call(spawned, {"chat_id": chat_id, "title": step.title, "status": "running"})
        if not step.wait:
            return
        waited = await self._stream_call("wait_agent", {"chat_id": chat_id})
        self._finish_call(waited, await self._output.await_child(chat_id))

    def _finish_call(self, call: JsonDict, result: Any) -> None:
        """A tool call's result, streamed and persisted as a ``tool`` message."""
        ids = {"tool_call_id": call["tool_call_id"], "tool_name": call["tool_name"]}
        done = part("tool-result", **ids, result=result)
        self._output.part("tool", done)
        self._output.persist("tool", [done])

    async def _stream_call(self, name: str, args: Mapping[str, Any], *, flush: bool = True) -> JsonDict:
        """Stream a tool call and (unless told not to) persist the assistant message it ends; the
        call's final part."""
        # UNCERTAIN (reference 4.4): G1's exact tool-call chunking; deltas first, then full args.
        ids = {"tool_call_id": f"toolu_{uuid.uuid4().hex[:24]}", "tool_name": name}
        for chunk in _even_chunks(encode(dict(args)), _ARGS_DELTA_CHUNKS):
            await asyncio.sleep(self._interval)
            self._output.part("assistant", part("tool-call", **ids, args_delta=chunk))
        await asyncio.sleep(self._interval)
        call = part("tool-call", **ids, args=dict(args))
        self._output.part("assistant", call)
        self._draft.append(call)
        if flush:
            self._flush()
        return call

    async def _call_tool(self, step: ToolCall) -> None:
        call = await self._stream_call(step.name, step.args)
        ids = {"tool_call_id": call["tool_call_id"], "tool_name": step.name}
        await asyncio.sleep(max(step.seconds, self._interval))
        flags = {"is_error": True} if step.is_error else {}
        result = part("tool-result", **ids, result=step.result, **flags)
        self._output.part("tool", result)
        self._output.persist("tool", [result])

    def _flush(self) -> None:
        content = self.draft_content()
        self._draft = []
        if content:
            self._output.persist("assistant", content)


def _retry_payload(step: Retry) -> JsonDict:
    """The fields every G1 build sends (4.3); kind/provider/status_code are later additions."""
    retrying_at = datetime.now(UTC) + timedelta(milliseconds=step.delay_ms)
    return {
        "attempt": step.attempt,
        "delay_ms": step.delay_ms,
        "error": step.error,
        "retrying_at": timestamp(retrying_at),
    }


def _word_chunks(text: str, words: int) -> Iterator[str]:
    """Deltas of ``words`` words, each keeping its trailing whitespace, so they join back exactly."""
    pieces = [piece for piece in _WORD_BOUNDARY.split(text) if piece]
    for start in range(0, len(pieces), words):
        yield "".join(pieces[start : start + words])


def _even_chunks(text: str, count: int) -> list[str]:
    size = max(1, -(-len(text) // count))
    return [text[start : start + size] for start in range(0, len(text), size)]
