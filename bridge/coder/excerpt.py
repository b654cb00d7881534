"""Shortening outside text (frames, error bodies) before it reaches a log line or an exception."""

from __future__ import annotations

LIMIT = 200


def excerpt(text: str) -> str:
    """``text`` stripped and cut to ``LIMIT`` characters, marked with "…" when cut."""
    text = text.strip()
    return text if len(text) <= LIMIT else text[:LIMIT] + "…"
