"""What a new chat can be given: the listings of models, workspaces and MCP servers, as ``Choice``s.

Each generation lists them at its own paths (reference sections 2 and 3.9); the JSON shapes are
read here so the backends only say where to look:

- models: the admin-configured model configs, whose uuid is what ``model_config_id`` takes (the
  ``/chats/models`` catalog's ids are provider strings, not accepted on create). G1 lists them at
  ``GET /api/experimental/chats/model-configs`` (non-admins see the enabled ones in later G1
  builds; the earliest answer 403), G2 at ``GET /api/v2/organizations/{org}/chats/models``;
- workspaces: ``GET /api/v2/workspaces?q=owner:me`` (the token owner's, every generation);
- MCP servers: ``GET /api/experimental/mcp/servers`` (G1), ``GET /api/v2/ai-gateway/mcp-servers``
  (G2, newest source; UNCERTAIN for v2.37 builds).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.coder.errors import CoderError
from bridge.coder.experimental_wire import decode
from bridge.coder.rest import RestClient, read_json
from bridge.coder.types import Choice

WORKSPACES = "/api/v2/workspaces"


def _objects(raw: Any, key: str | None) -> list[dict[str, Any]]:
    items = raw.get(key) if key is not None and isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise CoderError("Coder sent a list this bridge does not recognise")
    return [item for item in items if isinstance(item, dict) and item.get("id")]


def _enabled_choices(items: list[dict[str, Any]], names: tuple[str, ...], alias: str) -> list[Choice]:
    """The enabled items, named by the first of ``names`` they have, with ``alias`` as another name."""
    return [
        Choice(
            id=str(item["id"]),
            name=str(next((item[k] for k in names if item.get(k)), item["id"])),
            aliases=(str(item[alias]),) if item.get(alias) else (),
        )
        for item in items
        if item.get("enabled", True)
    ]


def parse_models(raw: Any, key: str | None = None) -> list[Choice]:
    """ChatModelConfig / ChatModel lists: the enabled ones, named by display name and model."""
    return _enabled_choices(_objects(raw, key), ("display_name", "model"), "model")


def parse_workspaces(raw: Any) -> list[Choice]:
    """``{"workspaces": [Workspace…]}``: each by name."""
    return [Choice(id=str(w["id"]), name=str(w.get("name") or w["id"])) for w in _objects(raw, "workspaces")]


def parse_mcp_servers(raw: Any) -> list[Choice]:
    """MCPServerConfig[]: the enabled ones, by slug and display name."""
    return _enabled_choices(_objects(raw, None), ("slug", "display_name"), "display_name")


async def list_choices(
    rest: RestClient, path: str, parse: Callable[[Any], list[Choice]], params: dict[str, str] | None = None
) -> list[Choice]:
    """GET a listing and read it as choices."""
    response = await rest.call("list_choices", "GET", path, idempotent=True, params=params)
    return decode(read_json(response), parse, "listing")


async def list_workspaces(rest: RestClient) -> list[Choice]:
    """The token owner's workspaces."""
    return await list_choices(rest, WORKSPACES, parse_workspaces, {"q": "owner:me"})
