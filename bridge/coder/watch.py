"""The chat-list watch: one socket that reports status, title and diff changes of all chats.

Coder pushes a ``ChatWatchEvent`` for each change to any chat the token's owner has (reference 4.8),
so one connection tells the bridge when a chat starts working without its stream open, when its
title changes, and when its pull request moves. The socket is the same kind as a chat stream (a
one-way WebSocket, enveloped or bare), so it rides on ``ReconnectingStream``: the same framing
detection, backoff with jitter, give-up rule and liveness checks, with no cursor.

Coder sends no snapshot on watch, and events that happen while the socket is down are lost: a
consumer re-reads the chat list after every ``ConnectedEvent``.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from bridge.coder.framing import RawEvent
from bridge.coder.observe import NOOP_OBSERVER, CoderObserver
from bridge.coder.stream import DEFAULT_RECONNECT, ReconnectingStream, ReconnectPolicy, websocket_url
from bridge.coder.types import WatchBatch, WatchEvent


class ChatWatch(Protocol):
    """Batches of watch events across reconnects, each connection announced by a ``ConnectedEvent``.

    Iteration ends with ``CoderUnavailable`` when reconnecting looks hopeless, or with another
    ``CoderError`` (e.g. a revoked token); the caller decides when to open a new watch.
    """

    def __aiter__(self) -> AsyncIterator[WatchBatch]: ...

    async def aclose(self) -> None: ...


def open_watch(
    base_url: str,
    path: str,
    token: str,
    *,
    parse_event: Callable[[RawEvent], WatchEvent | None],
    policy: ReconnectPolicy = DEFAULT_RECONNECT,
    observer: CoderObserver = NOOP_OBSERVER,
    ssl_context: ssl.SSLContext | None = None,
) -> ChatWatch:
    """A reconnecting watch on ``path`` (e.g. ``/api/v2/chats/watch``) of the deployment at ``base_url``."""
    url = websocket_url(base_url, path, {})
    return ReconnectingStream(
        chat_id=None,
        url_for=lambda _: url,
        token=token,
        parse_event=parse_event,
        policy=policy,
        observer=observer,
        ssl_context=ssl_context,
        name="chat watch",
    )
