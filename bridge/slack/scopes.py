"""The bot scopes and events the bridge needs; ``manifest.yml`` requests exactly these (a test keeps
them equal), and the demo installs its simulated app with the same events."""

from __future__ import annotations

REQUIRED_SCOPES: dict[str, str] = {
    "app_mentions:read": "receive @mentions (app_mention events)",
    "assistant:write": "declared an agent (agent_view): Agent Sessions with status, title and Stop",
    "channels:history": "receive thread replies (and read a thread's earlier ones, or a channel's recent "
    "messages for a thread root of the bot's) in public channels",
    "groups:history": "receive thread replies (and read a thread's earlier ones, or a channel's recent "
    "messages for a thread root of the bot's) in private channels",
    "im:history": "receive direct messages to the bot (message.im) and read their threads",
    "chat:write": "post and edit the agent's replies in threads",
    "files:read": "download images and files attached to messages for the agent",
    "files:write": "post the files the agent attaches (screenshots, reports) into its thread",
    "reactions:read": "receive the reactions that interrupt or archive a chat",
    "reactions:write": "mark what the agent works on, what is done and what is queued",
    "commands": "the /coder slash command (link and unlink a Coder account)",
    "users:read": "tell guests and people from other organizations apart (access policy)",
    "usergroups:read": "allow user groups in BRIDGE_ALLOWED_USERS and BRIDGE_ADMINS",
}

REQUIRED_EVENTS: frozenset[str] = frozenset(
    {
        "app_home_opened",
        "app_mention",
        "message.channels",
        "message.groups",
        "message.im",
        "reaction_added",
        "reaction_removed",
        "agent_session_stopped",
        "agent_session_title_changed",
    }
)
"""The bot events the bridge handles: mentions, DMs, thread replies in public and private channels,
reactions, App Home opens, and the Stop button and renames of Agent Sessions."""
