"""What a simulated Coder deployment offers a new chat: model configs, workspaces, MCP servers.

A chat is created with ``model_config_id``, ``workspace_id`` and ``mcp_server_ids`` (reference
section 2); each must name something that exists, so the simulator keeps a small catalog of each,
serves the listings a client picks them from, and checks create requests against it.

- Model configs (3.9): G1 lists them at ``GET /api/experimental/chats/model-configs`` (later G1
  builds show non-admins only the enabled ones, coderd ``listChatModelConfigs``); G2 at
  ``GET /api/v2/organizations/{org}/chats/models`` (PR #28632). An unknown or disabled id is 400
  "Invalid model config ID.".
- Workspaces: ``GET /api/v2/workspaces?q=owner:me`` (``{"workspaces": [...], "count": n}``). A
  workspace the caller does not own is 400 "Workspace not found or you do not have access to this
  resource" (section 2).
- MCP servers: ``GET /api/experimental/mcp/servers`` (codersdk ``MCPServerConfigs`` of the G1 and
  earlier G2 builds, when MCP was not yet promoted); the newest source lists them per organization,
  ``GET /api/v2/organizations/{org}/mcp-servers`` (coderd/chat_routes.go at 004053e8), some of them
  disabled by an administrator. Unknown ids are 400 "One or more MCP server IDs are invalid.".
- Providers (newest source only): the organization's model listing also carries a descriptor per
  AI provider, ``available: false`` with an ``unavailable_reason`` where none of its models can be
  used (codersdk ``ChatModelProviderDescriptor``, chats.go at 004053e8).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bridge.sim.coder_rules import ApiError
from bridge.sim.coder_state import NIL_UUID, JsonDict


@dataclass(frozen=True)
class SimModelConfig:
    """An admin-configured model; its ``id`` is what ``model_config_id`` takes."""

    id: str
    model: str
    display_name: str
    provider: str = "anthropic"
    enabled: bool = True
    is_default: bool = False


@dataclass(frozen=True)
class SimProvider:
    """An AI provider the organization's models run on (newest source)."""

    id: str
    type: str
    display_name: str
    unavailable_reason: str = ""
    """``missing_api_key``, ``fetch_failed`` or ``user_api_key_required``; empty when available."""


@dataclass(frozen=True)
class SimWorkspace:
    """A workspace a chat can run in."""

    id: str
    name: str
    owner_id: str
    owner_name: str


@dataclass(frozen=True)
class SimMcpServer:
    """An MCP server configured by an admin."""

    id: str
    slug: str
    display_name: str
    enabled: bool = True


def _model_json(m: SimModelConfig, created_at: str) -> JsonDict:
    """The fields both generations' model configs share."""
    return {
        "id": m.id,
        "model": m.model,
        "display_name": m.display_name,
        "enabled": m.enabled,
        "is_default": m.is_default,
        "context_limit": 200_000,
        "compression_threshold": 70,
        "created_at": created_at,
        "updated_at": created_at,
    }


def _new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Catalog:
    """The deployment's model configs, workspaces and MCP servers."""

    models: list[SimModelConfig] = field(default_factory=list)
    workspaces: list[SimWorkspace] = field(default_factory=list)
    mcp_servers: list[SimMcpServer] = field(default_factory=list)
    providers: list[SimProvider] = field(default_factory=list)
    """Listed with the models only where non-empty (the newest source)."""

    @classmethod
    def default(cls, default_model_id: str) -> Catalog:
        """Two enabled models (the first is the default) and a disabled one; no workspaces or MCP."""
        return cls(
            models=[
                SimModelConfig(default_model_id, "claude-sonnet-4", "Claude Sonnet 4", is_default=True),
                SimModelConfig(_new_id(), "gpt-5", "GPT-5", provider="openai"),
                SimModelConfig(_new_id(), "o1", "o1", provider="openai", enabled=False),
            ]
        )

    @classmethod
    def late(cls, default_model_id: str) -> Catalog:
        """``default``'s, plus what the newest source shows: a provider with no API key (whose
        model, Gemini 2.5 Pro, cannot be used) and an MCP server an administrator disabled."""
        catalog = cls.default(default_model_id)
        catalog.providers = [
            SimProvider(_new_id(), "anthropic", "Anthropic"),
            SimProvider(_new_id(), "openai", "OpenAI"),
            SimProvider(_new_id(), "google", "Google", unavailable_reason="missing_api_key"),
        ]
        catalog.models.append(
            SimModelConfig(_new_id(), "gemini-2.5-pro", "Gemini 2.5 Pro", provider="google")
        )
        catalog.add_mcp_server("jira", "Jira", enabled=False)
        return catalog

    def add_workspace(self, owner_id: str, owner_name: str, name: str) -> str:
        """A workspace of ``owner_name``; returns its id."""
        workspace = SimWorkspace(_new_id(), name, owner_id, owner_name)
        self.workspaces.append(workspace)
        return workspace.id

    def add_mcp_server(self, slug: str, display_name: str = "", *, enabled: bool = True) -> str:
        """An MCP server (enabled unless said otherwise); returns its id."""
        server = SimMcpServer(_new_id(), slug, display_name or slug, enabled)
        self.mcp_servers.append(server)
        return server.id

    def model_config(self, requested: str | None) -> str:
        """The config a create asks for (an enabled one), else the default; 400 otherwise."""
        enabled = [m for m in self.models if m.enabled]
        if requested is None:
            default = next((m for m in enabled if m.is_default), None)
            if default is None:
                raise ApiError(400, "No default chat model config is configured.")
            return default.id
        if requested not in {m.id for m in enabled}:
            raise ApiError(400, "Invalid model config ID.")
        return requested

    def workspace(self, requested: str | None, owner_id: str) -> str | None:
        """The workspace a create names, if the caller owns it; 400 otherwise."""
        if requested is None:
            return None
        if not any(w.id == requested and w.owner_id == owner_id for w in self.workspaces):
            raise ApiError(400, "Workspace not found or you do not have access to this resource")
        return requested

    def check_mcp_servers(self, ids: Iterable[str]) -> list[str]:
        """The MCP server ids of a create, all of which must exist; 400 naming the unknown ones."""
        wanted = list(ids)
        known = {s.id for s in self.mcp_servers}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise ApiError(
                400, "One or more MCP server IDs are invalid.", f"Invalid IDs: {', '.join(unknown)}"
            )
        return wanted

    def g1_model_configs_json(self, created_at: str) -> list[JsonDict]:
        """codersdk.ChatModelConfig[] as a non-admin sees it: the enabled configs."""
        return [{**_model_json(m, created_at), "provider": m.provider} for m in self.models if m.enabled]

    def g2_models_json(self, organization_id: str, created_at: str) -> JsonDict:
        """G2 ``OrganizationChatModelsResponse``: the organization's enabled model configs, and the
        provider descriptors where the catalog has providers (the newest source)."""
        by_type = {p.type: p.id for p in self.providers}
        models = [
            {
                **_model_json(m, created_at),
                "organization_id": organization_id,
                "ai_provider_id": by_type.get(m.provider, NIL_UUID),
            }
            for m in self.models
            if m.enabled
        ]
        if not self.providers:
            return {"models": models}
        providers = [_provider_json(p) for p in self.providers]
        return {"models": models, "providers": providers, "unsupported_providers": []}

    def workspaces_json(self, owner_id: str, organization_id: str, created_at: str) -> JsonDict:
        """``GET /api/v2/workspaces?q=owner:me``: the caller's workspaces (a subset of Workspace)."""
        mine: list[dict[str, Any]] = [
            {
                "id": w.id,
                "created_at": created_at,
                "updated_at": created_at,
                "owner_id": w.owner_id,
                "owner_name": w.owner_name,
                "organization_id": organization_id,
                "name": w.name,
            }
            for w in self.workspaces
            if w.owner_id == owner_id
        ]
        return {"workspaces": mine, "count": len(mine)}

    def mcp_servers_json(self, created_at: str) -> list[JsonDict]:
        """codersdk.MCPServerConfig[] (the fields a non-admin sees that a client needs)."""
        return [
            {
                "id": s.id,
                "slug": s.slug,
                "display_name": s.display_name,
                "description": "",
                "transport": "streamable_http",
                "auth_type": "none",
                "availability": "default_off",
                "enabled": s.enabled,
                "created_at": created_at,
                "updated_at": created_at,
            }
            for s in self.mcp_servers
        ]

    def org_mcp_servers_json(self, organization_id: str, created_at: str) -> list[JsonDict]:
        """The newest ``MCPServerConfig[]`` as a non-admin reads it (codersdk/mcp.go at 0217d8af):
        every key without ``omitempty``, the admin-only OAuth2 and API-key fields left out."""
        return [
            {
                "id": s.id,
                "organization_id": organization_id,
                "display_name": s.display_name,
                "slug": s.slug,
                "description": "",
                "icon_url": "",
                "transport": "streamable_http",
                "url": f"https://{s.slug}.mcp.example.com/mcp",
                "auth_type": "none",
                "has_oauth2_secret": False,
                "has_api_key": False,
                "has_custom_headers": False,
                "tool_allow_list": [],
                "tool_deny_list": [],
                "availability": "default_off",
                "enabled": s.enabled,
                "model_intent": False,
                "allow_in_plan_mode": False,
                "forward_coder_headers": False,
                "has_signing_secret": False,
                "created_at": created_at,
                "updated_at": created_at,
                "auth_connected": False,
            }
            for s in self.mcp_servers
        ]


def _provider_json(provider: SimProvider) -> JsonDict:
    """A ``ChatModelProviderDescriptor``: ``unavailable_reason`` omitted when available."""
    body: JsonDict = {
        "id": provider.id,
        "type": provider.type,
        "display_name": provider.display_name,
        "icon": "",
        "enabled": True,
        "has_api_key": not provider.unavailable_reason,
        "has_user_api_key": False,
        "has_effective_api_key": not provider.unavailable_reason,
        "allow_user_api_key": False,
        "available": not provider.unavailable_reason,
    }
    if provider.unavailable_reason:
        body["unavailable_reason"] = provider.unavailable_reason
    return body
