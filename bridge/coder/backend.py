"""The one interface the relay uses to talk to Coder, whatever generation of the Chats API it serves.

A backend owns its generation's paths, request shapes, status names and stream framing, and speaks
only ``bridge.coder.types`` to its callers. ``connect_backend`` probes the server and picks one.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict, Unpack
from urllib.parse import quote

from bridge.coder.aisdk import DEFAULT_OPTIONS, AiSdkBackend, AiSdkOptions, Spawn
from bridge.coder.errors import (
    CoderApiMissing,
    CoderError,
    CoderNotFound,
    CoderRejected,
    CoderUnavailable,
)
from bridge.coder.experimental import ExperimentalBackend
from bridge.coder.observe import NOOP_OBSERVER, CoderObserver
from bridge.coder.rest import DEFAULT_RETRY, DEFAULT_TIMEOUT, RestClient, RetryPolicy, read_json
from bridge.coder.stream import ReconnectPolicy
from bridge.coder.types import (
    NO_OPTIONS,
    Capabilities,
    Chat,
    ChatCost,
    ChatDiff,
    ChatId,
    ChatOption,
    ChatOptions,
    Choice,
    CoderUser,
    EditResult,
    InputPart,
    Message,
    QueuedMessage,
    SendResult,
    ServerFacts,
    StreamEvent,
    ToolResult,
)
from bridge.coder.users import fetch_me
from bridge.coder.v2 import V2Backend
from bridge.coder.watch import ChatWatch


class ChatStream(Protocol):
    """Batches of events of one chat, across reconnects, until closed.

    Every (re)connection starts with a ``ConnectedEvent`` followed by the server's snapshot, so a
    consumer can reset per-turn state. Reconnects resume after the highest message id seen.
    """

    def __aiter__(self) -> AsyncIterator[list[StreamEvent]]: ...

    async def aclose(self) -> None: ...


class CoderBackend(Protocol):
    """Operations on Coder chats, independent of the API generation."""

    @property
    def generation(self) -> str:
        """Short name of the API generation, e.g. ``experimental``; shown by ``bridge doctor``."""
        ...

    @property
    def capabilities(self) -> Capabilities:
        """What this generation's API does itself, and what the bridge does for it or refuses."""
        ...

    @property
    def base_url(self) -> str:
        """The deployment URL, e.g. ``https://coder.example.com``."""
        ...

    def chat_url(self, chat_id: ChatId) -> str:
        """Where a person opens the chat in Coder's web UI."""
        ...

    @property
    def accepted_media_types(self) -> frozenset[str]:
        """The media types ``upload_file`` accepts on this generation (checked by content)."""
        ...

    async def whoami(self) -> CoderUser:
        """The user the token belongs to; raises ``CoderAuthError`` for a bad token."""
        ...

    async def create_chat(
        self,
        content: Sequence[InputPart],
        *,
        labels: Mapping[str, str],
        organization_id: str | None = None,
        options: ChatOptions = NO_OPTIONS,
    ) -> Chat:
        """Start a chat whose first user message is ``content``, with ``options`` (Coder ids from
        ``choices``; only those ``capabilities.options`` names)."""
        ...

    async def choices(self, option: ChatOption) -> list[Choice]:
        """What ``option`` can be set to on a new chat; empty where the generation lacks it."""
        ...

    async def send_message(
        self,
        chat_id: ChatId,
        content: Sequence[InputPart],
        *,
        resume: bool = False,
        leave_plan_mode: bool = False,
    ) -> SendResult:
        """Add a user message; Coder queues it while the agent is busy. ``resume``: the chat waits for
        its person (``ChatPhase.NEEDS_USER``) and this message is the answer that ends the wait.
        ``leave_plan_mode``: the message takes the chat out of plan mode (``capabilities.plan_mode``)."""
        ...

    async def submit_tool_results(self, chat_id: ChatId, results: Sequence[ToolResult]) -> None:
        """Answer the client tool calls the chat waits on (``capabilities.waits_for_user``)."""
        ...

    async def get_chat(self, chat_id: ChatId) -> Chat:
        """Current metadata of one chat."""
        ...

    async def list_chats(self, *, labels: Mapping[str, str] | None = None) -> list[Chat]:
        """The token owner's chats, optionally only those carrying all ``labels``."""
        ...

    async def recent_messages(self, chat_id: ChatId, *, limit: int = 50) -> list[Message]:
        """The newest persisted messages, oldest first."""
        ...

    async def interrupt(self, chat_id: ChatId) -> Chat:
        """Stop the running turn."""
        ...

    async def set_archived(self, chat_id: ChatId, archived: bool) -> None:
        """Archive or unarchive a chat (archiving also interrupts it)."""
        ...

    async def rename(self, chat_id: ChatId, title: str) -> Chat:
        """Ask Coder to give the chat ``title``; the chat as Coder has it afterwards, whose title
        says whether this build took it (``capabilities.rename``). ``CoderRejected`` where the
        generation has no way to rename."""
        ...

    async def promote_queued(self, chat_id: ChatId, queued_id: int) -> Message | None:
        """Make a queued follow-up the next message the agent gets; returns it as persisted, or
        ``None`` where Coder only accepts the promotion (the message then comes on the stream)."""
        ...

    async def edit_message(
        self, chat_id: ChatId, message_id: int, content: Sequence[InputPart]
    ) -> EditResult:
        """Replace a delivered user message; Coder drops every later message and the queue, and the
        agent re-runs from the new one (which has a new id). ``CoderRejected`` where unsupported."""
        ...

    async def queued_messages(self, chat_id: ChatId) -> list[QueuedMessage]:
        """The follow-ups Coder currently holds for the chat, in queue order."""
        ...

    async def delete_queued(self, chat_id: ChatId, queued_id: int) -> None:
        """Remove a follow-up from the queue (no error if it is no longer there)."""
        ...

    async def read_file(self, file_id: str) -> bytes:
        """A chat file's bytes (``capabilities.stored_files``), e.g. the plan an agent proposed."""
        ...

    async def upload_file(self, organization_id: str, data: bytes, media_type: str, filename: str) -> str:
        """Upload a file for use in an ``InputPart.of_file``; returns its id."""
        ...

    def stream(self, chat_id: ChatId, *, after_id: int | None = None) -> ChatStream:
        """Follow a chat's events, starting with a snapshot of messages after ``after_id``."""
        ...

    def watch(self) -> ChatWatch | None:
        """Changes to all of the token owner's chats; ``None`` where the generation has no watch."""
        ...

    async def get_diff(self, chat_id: ChatId) -> ChatDiff | None:
        """The chat's branch, PR link and changed files; ``None`` where the generation has no diffs."""
        ...

    async def download_file(self, file_id: str) -> tuple[bytes, str]:
        """A chat file's bytes and stored media type: one the agent attached, say."""
        ...

    def file_url(self, file_id: str) -> str:
        """Where a person signed in to Coder opens a chat file in the browser."""
        ...

    async def chat_cost(self, chat_id: ChatId) -> ChatCost | None:
        """What the chat's tree cost, as Coder's AI Gateway counts it; ``None`` where Coder does not
        say (no cost endpoint in this build or generation)."""
        ...

    async def facts(self) -> ServerFacts:
        """What the server's build does where builds differ, found by reading only."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


# Choosing a backend ------------------------------------------------------------------------------


class BackendTuning(TypedDict, total=False):
    """Optional knobs every backend accepts; tests shrink timings with them."""

    timeout: float
    ssl_context: ssl.SSLContext | None
    retry: RetryPolicy
    reconnect: ReconnectPolicy


class _BackendFactory(Protocol):
    def __call__(
        self,
        base_url: str,
        token: str,
        *,
        organization_id: str | None = None,
        observer: CoderObserver = NOOP_OBSERVER,
        **tuning: Unpack[BackendTuning],
    ) -> CoderBackend: ...


_BACKENDS: Mapping[str, _BackendFactory | None] = {
    "experimental": ExperimentalBackend,
    "v2": V2Backend,
    "v2-legacy": None,
}
"""Implemented generations by name: the accepted ``api`` values besides ``auto``. The 2025 AI-SDK
API's backend (``None`` here) is built apart: it needs options and a task spawner."""

_PREFERENCE = ("v2", "experimental", "v2-legacy")
"""When a server answers for several generations (Coder 2.37 mounts G2 under both prefixes), the
first of these it shows wins. The 2025 AI-SDK API comes last: it is recognised only by chat objects
with nothing but its four keys, or, with no chats yet, by its ``agentic-chat`` experiment on a
server without the G2 models route (reference 6b), which no other generation shows."""


class _Resolve(Protocol):
    async def __call__(self, rest: RestClient, organization_id: str | None) -> tuple[str, str | None]: ...


@dataclass(frozen=True)
class _Probe:
    """A GET that tells generations apart by the JSON of its 200 answer."""

    path: str
    identify: Callable[[Any], str | None]
    """The generation a 200 body shows, or ``None`` if it shows none we know."""
    resolve_empty: _Resolve | None = None
    """A further read-only probe for an empty chat list, which shows no generation by itself."""


def _identify_experimental(body: Any) -> str | None:
    return "experimental" if isinstance(body, list) else None


def _identify_v2_chats(body: Any) -> str | None:
    """``/api/v2/chats`` served three different APIs over time (reference, section 6b)."""
    if not isinstance(body, list) or not body or not isinstance(body[0], dict):
        return None
    chat = body[0]
    if "last_model_config_id" in chat:
        return "v2"
    if "status" in chat:
        return "prototype"
    return "v2-legacy" if set(chat) <= {"id", "created_at", "updated_at", "title"} else None


async def _org_models_route(rest: RestClient, organization_id: str | None) -> tuple[str, str | None]:
    """Whether ``GET /api/v2/organizations/{org}/chats/models`` exists: it came with G2 in v2.37.

    The catalog moved there in PR #28632 (reference section 0); coder/terraform-provider-coderd
    probes the same route to tell whether a deployment has the promoted API. A 404 means an older
    API on ``/api/v2/chats`` (the chat-daemon builds from before February 2026).
    """
    if organization_id is None:
        user = await fetch_me(rest, "detect_api")
        if not user.organization_ids:
            return "GET /api/v2/users/me showed no organization to probe models with", None
        organization_id = user.organization_ids[0]
    path = f"/api/v2/organizations/{quote(organization_id, safe='')}/chats/models"
    try:
        await rest.call("detect_api", "GET", path, idempotent=True)
    except CoderNotFound:
        return f"GET {path} answered 404", None
    except CoderRejected as exc:
        if exc.status != 403:
            raise
        return f"GET {path} answered 403 (the route exists)", "v2"
    return f"GET {path} answered 200", "v2"


async def _org_models_or_agentic_chat(
    rest: RestClient, organization_id: str | None
) -> tuple[str, str | None]:
    """An empty ``/api/v2/chats`` list: G2 if the org models route exists, else the 2025 AI-SDK API
    (G0a) if enabled.

    The 2025 AI-SDK API was gated by the ``agentic-chat`` experiment, so a server whose
    org models route is 404 but whose ``GET /api/v2/experiments`` lists ``agentic-chat`` serves it
    on ``/api/v2/chats``. The experiments probe is named in the reason only when it finds it.
    """
    finding, generation = await _org_models_route(rest, organization_id)
    if generation is not None:
        return finding, generation
    try:
        response = await rest.call("detect_api", "GET", "/api/v2/experiments", idempotent=True)
    except CoderRejected:  # 404 on builds without the route; an auth error would have come earlier
        return finding, None
    try:
        experiments = read_json(response)
    except CoderError:
        return finding, None
    if isinstance(experiments, list) and "agentic-chat" in experiments:
        return f"{finding}; GET /api/v2/experiments lists agentic-chat", "v2-legacy"
    return finding, None


_PROBES = (
    _Probe("/api/experimental/chats", _identify_experimental),
    _Probe("/api/v2/chats", _identify_v2_chats, resolve_empty=_org_models_or_agentic_chat),
)
"""Tried in order, all of them; then the first generation of ``_PREFERENCE`` found wins."""

_EXPERIMENT = re.compile(r"'([\w-]+)' experiment")

_GENERATION_NAMES = {
    "experimental": "the experimental Chats API",
    "v2": "the graduated Chats API of Coder 2.37+",
    "prototype": "the early chat-daemon prototype API",
    "v2-legacy": "the 2025 AI-SDK chat API",
}


async def connect_backend(
    base_url: str,
    token: str,
    *,
    api: str = "auto",
    organization_id: str | None = None,
    observer: CoderObserver = NOOP_OBSERVER,
    ai_sdk: AiSdkOptions = DEFAULT_OPTIONS,
    spawn: Spawn | None = None,
    check_model: bool = True,
    **tuning: Unpack[BackendTuning],
) -> tuple[CoderBackend, str]:
    """The backend for the Chats API the server speaks, and one line saying why it was chosen.

    ``api`` is ``auto`` (probe the server) or a generation name to skip probing. ``ai_sdk`` is used
    only if the server speaks the 2025 AI-SDK API; its model is checked against the server's list.
    ``spawn`` starts that API's reply readers in the background, so it is required for it (a
    ``ValueError`` otherwise: a caller's mistake, not the server's).
    Raises ``CoderAuthError`` for a bad token, ``CoderUnavailable`` if the server can't be reached,
    ``CoderApiMissing`` if no supported API answers, with what was probed in its detail, and
    ``CoderModelUnknown`` for a model the server does not offer. ``check_model=False`` skips that
    check, for a model an earlier connect settled (a linked person's backend makes no request here,
    so a refused token shows on its first real call, where the relay handles it).
    """
    if api == "auto":
        api, reason = await _detect(base_url, token, organization_id, observer, tuning)
    elif api in _BACKENDS:
        reason = f"API generation set to {api!r} by configuration"
    else:
        supported = ", ".join(("auto", *_BACKENDS))
        raise CoderApiMissing(f"Unknown Coder API {api!r}; supported values: {supported}")
    if api == "v2-legacy":
        if spawn is None:
            raise ValueError("the 2025 AI-SDK API reads replies in background tasks: pass spawn=")
        aisdk = AiSdkBackend(
            base_url,
            token,
            spawn=spawn,
            options=ai_sdk,
            organization_id=organization_id,
            observer=observer,
            **tuning,
        )
        if not check_model:
            return aisdk, f"{reason}; model {aisdk.model or 'unchecked'}"
        try:
            model = await aisdk.prepare()
        except BaseException:
            await aisdk.aclose()
            raise
        return aisdk, f"{reason}; model {model}"
    factory = _BACKENDS[api]
    assert factory is not None
    return factory(base_url, token, organization_id=organization_id, observer=observer, **tuning), reason


async def _detect(
    base_url: str, token: str, organization_id: str | None, observer: CoderObserver, tuning: BackendTuning
) -> tuple[str, str]:
    rest = RestClient(
        base_url,
        token,
        timeout=tuning.get("timeout", DEFAULT_TIMEOUT),
        ssl_context=tuning.get("ssl_context"),
        retry=tuning.get("retry", DEFAULT_RETRY),
        observer=observer,
    )
    findings: list[str] = []
    found: list[str] = []
    switched_off: CoderApiMissing | None = None
    try:
        for probe in _PROBES:
            try:
                finding, generation = await _run_probe(rest, probe, organization_id)
            except CoderApiMissing as exc:  # the experimental prefix may be off while /api/v2 serves G2
                switched_off = exc
                findings.append(f"GET {probe.path} answered 403 (experiment disabled)")
                continue
            findings.append(finding)
            if generation is not None:
                found.append(generation)
    finally:
        await rest.aclose()
    chosen = next((g for g in _PREFERENCE if g in found), None)
    if chosen is not None:
        return chosen, "; ".join(findings)
    if switched_off is not None:
        raise CoderApiMissing(switched_off.message, detail="; ".join(findings), status=403)
    if found:
        names = " and ".join(_GENERATION_NAMES[g] for g in found)
        message = f"Coder at {rest.base_url} serves {names}, which this bridge does not support yet"
    else:
        message = f"No Coder Chats API found at {rest.base_url}"
    raise CoderApiMissing(message, detail="; ".join(findings))


async def _run_probe(rest: RestClient, probe: _Probe, organization_id: str | None) -> tuple[str, str | None]:
    """What ``probe`` got (as text for the reason line) and the generation it shows, if any."""
    try:
        response = await rest.call("detect_api", "GET", probe.path, idempotent=True)
    except CoderNotFound:
        return f"GET {probe.path} answered 404", None
    except CoderUnavailable as exc:
        raise CoderUnavailable(
            f"Could not reach Coder at {rest.base_url}{probe.path}", exc.detail or exc.message, exc.status
        ) from exc
    except CoderRejected as exc:
        if exc.status == 403 and "experiment" in exc.message.lower():
            # httpmw.RequireExperiment: "<Name> functionality requires enabling the '<name>' experiment."
            named = _EXPERIMENT.search(exc.message)
            experiment = named.group(1) if named else "agents"
            raise CoderApiMissing(
                f"Coder's Chats API is switched off: the '{experiment}' experiment is disabled "
                f"(enable it with CODER_EXPERIMENTS={experiment})",
                detail=exc.message,
                status=403,
            ) from exc
        raise
    answered = f"GET {probe.path} answered 200"
    try:
        body = read_json(response)
    except CoderError:
        return f"{answered} with a body that is not JSON", None
    generation = probe.identify(body)
    if generation is not None:
        return f"{answered} with a chat list of {_GENERATION_NAMES[generation]}", generation
    if body != []:
        return f"{answered} with JSON this bridge does not recognise", None
    if probe.resolve_empty is None:
        return f"{answered} with an empty chat list", None
    resolved, generation = await probe.resolve_empty(rest, organization_id)
    shows = f", so {_GENERATION_NAMES[generation]}" if generation is not None else ""
    return f"{answered} with an empty chat list; {resolved}{shows}", generation
