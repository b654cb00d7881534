"""The token's own user: ``GET /api/v2/users/me``, a route that predates and outlives every chats API."""

from __future__ import annotations

from bridge.coder.experimental_wire import decode, parse_user
from bridge.coder.rest import RestClient, read_json
from bridge.coder.types import CoderUser


async def fetch_me(rest: RestClient, operation: str = "whoami") -> CoderUser:
    """Who the token belongs to, and their organizations; ``CoderAuthError`` for a bad token."""
    response = await rest.call(operation, "GET", "/api/v2/users/me", idempotent=True)
    return decode(read_json(response), parse_user, "user")
