"""A Coder WebSocket that falls silent is treated as dead.

Coder pings every socket about every 15 s, so a socket from which nothing (no frame, no ping) has
arrived for well over that is stuck: a proxy that dropped it without a FIN, a wedged server.
TCP keeps such a socket "open" for hours and the client's own pings only catch a peer that stops
answering them. ``frames`` ends such a socket the way a network drop would (the caller sees
``ConnectionClosed`` and reconnects from its cursor), so every socket client in this package (the
chat stream, the chat-list watch) gets the same rule by connecting with
``create_connection=HeardConnection`` and reading through ``frames``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode
from websockets.typing import Data

log = logging.getLogger(__name__)


class HeardConnection(ClientConnection):
    """A client connection that notes when the peer last sent a frame or a ping of its own.

    Pongs (answers to our pings) do not count: a peer that answers pings but sends nothing else
    for that long is as stuck as one that sends nothing.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_heard = asyncio.get_running_loop().time()

    def process_event(self, event: Any) -> None:
        """Note the time of every frame but a pong, then process it as usual."""
        if isinstance(event, Frame) and event.opcode is not Opcode.PONG:
            self.last_heard = asyncio.get_running_loop().time()
        super().process_event(event)


async def frames(socket: HeardConnection, silence_timeout: float | None) -> AsyncIterator[Data]:
    """The socket's messages until it closes; after ``silence_timeout`` seconds without a word from
    the peer the socket is cut (no close handshake: the peer does not answer), which ends the
    iteration with ``ConnectionClosedError`` like a dropped connection. ``None`` never cuts."""
    loop = asyncio.get_running_loop()
    while True:
        if silence_timeout is None:
            yield await socket.recv()
            continue
        try:
            async with asyncio.timeout_at(socket.last_heard + silence_timeout):
                message = await socket.recv()  # cancelling recv loses nothing (websockets' guarantee)
        except TimeoutError:
            if loop.time() < socket.last_heard + silence_timeout:
                continue  # a ping arrived while waiting: the deadline moved
            log.warning(
                "Coder socket %s silent for %.1fs; dropping it to reconnect",
                socket.request.path if socket.request is not None else "",
                silence_timeout,
            )
            socket.transport.abort()
            await socket.wait_closed()
            yield await socket.recv()  # raises ConnectionClosedError
            return
        yield message
