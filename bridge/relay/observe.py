"""Hook through which the relay reports how its Slack output keeps up, e.g. to Prometheus.

The relay must stay free of the app's metrics stack (its import contract allows no ``bridge.metrics``),
so it only calls this protocol, as ``bridge.coder`` does ``CoderObserver``; the composition root
supplies an implementation.
"""

from __future__ import annotations

from typing import Protocol


class RelayObserver(Protocol):
    """Receives one report per budgeted Slack call and per text Slack came to show."""

    def budget_waited(self, team: str, method: str, seconds: float) -> None:
        """A call of ``method`` waited ``seconds`` for the budgets of workspace ``team`` (0: a token
        was there).

        Long waits mean the budget, not Slack or the bridge, sets the pace of what people see."""
        ...

    def text_shown(self, final: bool, seconds: float) -> None:
        """Slack now shows a thread's text that began to differ from it ``seconds`` ago (the stream
        event that changed it, coalesced edits included); ``final``: a final text or a new message."""
        ...


class NoopObserver:
    """The default: reports go nowhere."""

    def budget_waited(self, team: str, method: str, seconds: float) -> None:
        """Ignore the report."""

    def text_shown(self, final: bool, seconds: float) -> None:
        """Ignore the report."""


NOOP_OBSERVER: RelayObserver = NoopObserver()
