"""The client against a real Coder deployment, with read-only requests only.

Point it at one with ``BRIDGE_CONTRACT_CODER_URL`` (e.g. ``https://coder.example.com``) and
``BRIDGE_CONTRACT_CODER_TOKEN`` (a session token; its chats are listed, never changed). Without both
the module skips. Every check parses what the server answers with the client the bridge runs, so a
build whose shapes drifted from the fixtures fails here first.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from bridge.coder.backend import CoderBackend, connect_backend
from bridge.coder.errors import CoderNotFound, CoderRejected
from bridge.tasks import TaskGroup

URL = os.environ.get("BRIDGE_CONTRACT_CODER_URL", "")
TOKEN = os.environ.get("BRIDGE_CONTRACT_CODER_TOKEN", "")

pytestmark = pytest.mark.skipif(
    not (URL and TOKEN),
    reason="no real Coder to check against: set BRIDGE_CONTRACT_CODER_URL and BRIDGE_CONTRACT_CODER_TOKEN "
    "(read-only requests: build info, the token's user, chat list, model and MCP listings)",
)


@pytest.fixture
async def backend() -> AsyncIterator[CoderBackend]:
    """The backend the bridge would pick for this server (detection reads only)."""
    found, _ = await connect_backend(URL, TOKEN, spawn=TaskGroup("contract").spawn, check_model=False)
    try:
        yield found
    finally:
        await found.aclose()


async def test_server_names_its_version_and_behaviours(backend: CoderBackend) -> None:
    """Build info and the read-only facts the doctor prints parse."""
    facts = await backend.facts()
    assert facts.version, "GET /api/v2/buildinfo named no version"


async def test_token_owner_is_read(backend: CoderBackend) -> None:
    """GET /api/v2/users/me parses to the token's user."""
    user = await backend.whoami()
    assert user.id
    assert user.username


async def test_chat_list_parses_and_label_filters_hold(backend: CoderBackend) -> None:
    """Every chat of the token's owner parses; a label lookup keeps only chats carrying the label."""
    chats = await backend.list_chats()
    assert all(chat.id for chat in chats)
    labelled = next((chat for chat in chats if chat.labels), None)
    if labelled is None:
        pytest.skip("no chat with labels to look up by")
    key, value = next(iter(labelled.labels.items()))
    found = await backend.list_chats(labels={key: value})
    assert labelled.id in {chat.id for chat in found}
    assert all(chat.labels.get(key) == value for chat in found)


async def test_model_listing_parses(backend: CoderBackend) -> None:
    """The models a new chat can be given parse; an unavailable provider's models carry its reason."""
    if "model" not in backend.capabilities.options:
        pytest.skip(f"the {backend.generation} API takes no model per chat")
    models = await backend.choices("model")
    assert all(model.id and model.name for model in models)


async def test_mcp_listing_parses(backend: CoderBackend) -> None:
    """The MCP servers parse from wherever this build lists them."""
    if "mcp" not in backend.capabilities.options:
        pytest.skip(f"the {backend.generation} API takes no MCP servers per chat")
    try:
        servers = await backend.choices("mcp")
    except CoderNotFound:
        pytest.skip("this build lists MCP servers at none of the known paths")
    except CoderRejected as exc:
        pytest.skip(f"the token may not list MCP servers ({exc.status})")
    assert all(server.id and server.name for server in servers)
