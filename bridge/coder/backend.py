"""The one interface the relay uses to talk to Coder, whatever generation of the Chats API it serves.

A backend owns its generation's paths, request shapes, status names and stream framing, and speaks
only ``bridge.coder.types`` to its callers. ``connect_backend`` probes the server and picks one.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict, Unpack

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
    Chat,
    ChatId,
    CoderUser,
    InputPart,
    Message,
    SendResult,
    StreamEvent,
)


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
    def base_url(self) -> str:
        """The deployment URL, e.g. ``https://coder.example.com``."""
        ...

    def chat_url(self, chat_id: ChatId) -> str:
        """Where a person opens the chat in Coder's web UI."""
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
    ) -> Chat:
        """Start a chat whose first user message is ``content``."""
        ...

    async def send_message(self, chat_id: ChatId, content: Sequence[InputPart]) -> SendResult:
        """Add a user message; Coder queues it while the agent is busy."""
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

    async def upload_file(self, organization_id: str, data: bytes, media_type: str, filename: str) -> str:
        """Upload a file for use in an ``InputPart.of_file``; returns its id."""
        ...

    def stream(self, chat_id: ChatId, *, after_id: int | None = None) -> ChatStream:
        """Follow a chat's events, starting with a snapshot of messages after ``after_id``."""
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


_BACKENDS: Mapping[str, _BackendFactory] = {"experimental": ExperimentalBackend}
"""Implemented generations by name: the accepted ``api`` values besides ``auto``."""


@dataclass(frozen=True)
class _Probe:
    """A GET that tells generations apart by the JSON of its 200 answer."""

    path: str
    identify: Callable[[Any], str | None]
    """The generation a 200 body shows, or ``None`` if it shows none we know."""


def _identify_v2_chats(body: Any) -> str | None:
    """``/api/v2/chats`` served three different APIs over time (reference, section 6b)."""
    if not isinstance(body, list) or not body or not isinstance(body[0], dict):
        return None
    chat = body[0]
    if "last_model_config_id" in chat:
        return "v2"
    if "status" in chat:
        return "prototype"
    return "ai-sdk" if set(chat) <= {"id", "created_at", "updated_at", "title"} else None


_PROBES = (
    _Probe("/api/experimental/chats", lambda body: "experimental" if isinstance(body, list) else None),
    _Probe("/api/v2/chats", _identify_v2_chats),
)
"""Tried in order; the first implemented generation found wins."""

_GENERATION_NAMES = {
    "experimental": "the experimental Chats API",
    "v2": "the graduated Chats API of Coder 2.37+",
    "prototype": "the early chat-daemon prototype API",
    "ai-sdk": "the 2025 AI-SDK chat API",
}


async def connect_backend(
    base_url: str,
    token: str,
    *,
    api: str = "auto",
    organization_id: str | None = None,
    observer: CoderObserver = NOOP_OBSERVER,
    **tuning: Unpack[BackendTuning],
) -> tuple[CoderBackend, str]:
    """The backend for the Chats API the server speaks, and one line saying why it was chosen.

    ``api`` is ``auto`` (probe the server) or a generation name to skip probing. Raises
    ``CoderAuthError`` for a bad token, ``CoderUnavailable`` if the server can't be reached and
    ``CoderApiMissing`` if no supported API answers, with what was probed in its detail.
    """
    if api == "auto":
        api, reason = await _detect(base_url, token, observer, tuning)
    elif api in _BACKENDS:
        reason = f"API generation set to {api!r} by configuration"
    else:
        supported = ", ".join(("auto", *_BACKENDS))
        raise CoderApiMissing(f"Unknown Coder API {api!r}; supported values: {supported}")
    factory = _BACKENDS[api]
    return factory(base_url, token, organization_id=organization_id, observer=observer, **tuning), reason


async def _detect(
    base_url: str, token: str, observer: CoderObserver, tuning: BackendTuning
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
    try:
        for probe in _PROBES:
            answer, generation = await _run_probe(rest, probe)
            finding = f"GET {probe.path} answered {answer}"
            if generation is not None and generation in _BACKENDS:
                return generation, finding
            findings.append(finding)
            if generation is not None:
                found.append(generation)
    finally:
        await rest.aclose()
    if found:
        names = " and ".join(_GENERATION_NAMES[g] for g in found)
        message = f"Coder at {rest.base_url} serves {names}, which this bridge does not support yet"
    else:
        message = f"No Coder Chats API found at {rest.base_url}"
    raise CoderApiMissing(message, detail="; ".join(findings))


async def _run_probe(rest: RestClient, probe: _Probe) -> tuple[str, str | None]:
    """What ``probe`` got (as text for the reason line) and the generation it shows, if any."""
    try:
        response = await rest.call("detect_api", "GET", probe.path, idempotent=True)
    except CoderNotFound:
        return "404", None
    except CoderUnavailable as exc:
        raise CoderUnavailable(
            f"Could not reach Coder at {rest.base_url}{probe.path}", exc.detail or exc.message, exc.status
        ) from exc
    except CoderRejected as exc:
        if exc.status == 403 and "experiment" in exc.message.lower():
            raise CoderApiMissing(
                "Coder's Chats API is switched off: the 'agents' experiment is disabled "
                "(enable it with CODER_EXPERIMENTS=agents)",
                detail=exc.message,
                status=403,
            ) from exc
        raise
    try:
        body = read_json(response)
    except CoderError:
        return "200 with a body that is not JSON", None
    generation = probe.identify(body)
    if generation is None:
        shown = "an empty chat list" if body == [] else "JSON this bridge does not recognise"
        return f"200 with {shown}", None
    return f"200 with a chat list of {_GENERATION_NAMES[generation]}", generation
