"""Hook through which the Coder client reports calls and live streams, e.g. to Prometheus.

``bridge.coder`` must stay free of the app's metrics stack, so it only calls this protocol; the
composition root supplies an implementation.
"""

from __future__ import annotations

from typing import Protocol


class CoderObserver(Protocol):
    """Receives one report per REST attempt and per live stream socket."""

    def call_finished(self, operation: str, outcome: str, seconds: float) -> None:
        """One HTTP attempt ended; ``outcome`` is ``"ok"`` or the ``CoderError`` class name.

        Reported per attempt, not per retried call, so a flapping Coder shows up in the error
        rate even when retries hide it from users.
        """
        ...

    def stream_opened(self) -> None:
        """A stream (or watch) socket finished its handshake."""
        ...

    def stream_closed(self) -> None:
        """A socket reported by ``stream_opened`` ended, for whatever reason."""
        ...

    def stream_reconnecting(self) -> None:
        """A stream (or watch) socket was lost, or could not be opened, and is tried again: drops
        that people never see while reconnects succeed, the first sign of a failing Coder or proxy."""
        ...


class NoopObserver:
    """The default: reports go nowhere."""

    def call_finished(self, operation: str, outcome: str, seconds: float) -> None:
        """Ignore the report."""

    def stream_opened(self) -> None:
        """Ignore the report."""

    def stream_closed(self) -> None:
        """Ignore the report."""

    def stream_reconnecting(self) -> None:
        """Ignore the report."""


NOOP_OBSERVER: CoderObserver = NoopObserver()
