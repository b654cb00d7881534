"""What a new chat can be given: the listings of models, workspaces and MCP servers, as ``Choice``s.

Each generation lists them at its own paths (reference sections 2 and 3.9); the JSON shapes are
read here so the backends only say where to look:

- models: the admin-configured model configs, whose uuid is what ``model_config_id`` takes (the
  ``/chats/models`` catalog's ids are provider strings, not accepted on create). G1 lists them at
  ``GET /api/experimental/chats/model-configs`` (non-admins see the enabled ones in later G1
  builds; the earliest answer 403), G2 at ``GET /api/v2/organizations/{org}/chats/models``, whose
  ``OrganizationChatModelsResponse`` also lists the ``providers``: a model whose provider
  (``ai_provider_id``) is ``available: false`` cannot be used, for its ``unavailable_reason``
  (coder/coder codersdk/chats.go at 004053e8, ``ChatModelProviderDescriptor``);
- workspaces: ``GET /api/v2/workspaces?q=owner:me`` (the token owner's, every generation);
- MCP servers: ``MCPServerConfig[]``; where they are listed is the backend's business. A disabled
  server is listed, marked ``disabled``, so a person asking for it is told why it can't be had.
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


def _choice(item: dict[str, Any], names: tuple[str, ...], alias: str, unavailable: str = "") -> Choice:
    """An item named by the first of ``names`` it has, with ``alias`` as another name."""
    return Choice(
        id=str(item["id"]),
        name=str(next((item[k] for k in names if item.get(k)), item["id"])),
        aliases=(str(item[alias]),) if item.get(alias) else (),
        unavailable=unavailable,
    )


def _providers(raw: Any) -> list[dict[str, Any]] | None:
    """A G2 model listing's ``providers``; ``None`` where the listing has none (G1, older G2)."""
    providers = raw.get("providers") if isinstance(raw, dict) else None
    return [p for p in providers if isinstance(p, dict)] if isinstance(providers, list) else None


def _unavailable(providers: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [p for p in providers or () if p.get("available") is False]


def _reason(provider: dict[str, Any]) -> str:
    return str(provider.get("unavailable_reason") or "unavailable")


def parse_models(raw: Any, key: str | None = None) -> list[Choice]:
    """ChatModelConfig / ChatModel lists: the enabled ones, named by display name and model; those of
    an unavailable provider carry its reason."""
    unavailable = {str(p.get("id")): _reason(p) for p in _unavailable(_providers(raw))}
    return [
        _choice(
            item, ("display_name", "model"), "model", unavailable.get(str(item.get("ai_provider_id")), "")
        )
        for item in _objects(raw, key)
        if item.get("enabled", True)
    ]


def parse_workspaces(raw: Any) -> list[Choice]:
    """``{"workspaces": [Workspace…]}``: each by name."""
    return [Choice(id=str(w["id"]), name=str(w.get("name") or w["id"])) for w in _objects(raw, "workspaces")]


def parse_mcp_servers(raw: Any) -> list[Choice]:
    """MCPServerConfig[], by slug and display name; a disabled one is marked ``disabled``."""
    return [
        _choice(
            item, ("slug", "display_name"), "display_name", "" if item.get("enabled", True) else "disabled"
        )
        for item in _objects(raw, None)
    ]


def provider_problems(raw: Any) -> tuple[bool, tuple[str, ...]]:
    """Whether a model listing reports provider availability, and each unavailable provider as
    ``name (reason)``."""
    providers = _providers(raw)
    names = (
        f"{p.get('display_name') or p.get('type') or p.get('id')} ({_reason(p)})"
        for p in _unavailable(providers)
    )
    return providers is not None, tuple(names)


async def list_choices(
    rest: RestClient, path: str, parse: Callable[[Any], list[Choice]], params: dict[str, str] | None = None
) -> list[Choice]:
    """GET a listing and read it as choices."""
    response = await rest.call("list_choices", "GET", path, idempotent=True, params=params)
    return decode(read_json(response), parse, "listing")


async def list_workspaces(rest: RestClient) -> list[Choice]:
    """The token owner's workspaces."""
    return await list_choices(rest, WORKSPACES, parse_workspaces, {"q": "owner:me"})
