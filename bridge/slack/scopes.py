"""The bot scopes the bridge needs; ``manifest.yml`` requests exactly these (a test keeps them equal)."""

from __future__ import annotations

REQUIRED_SCOPES: dict[str, str] = {
    "app_mentions:read": "receive @mentions (app_mention events)",
    "assistant:write": "declared an agent (agent_view): Agent Sessions with status, title and Stop",
    "channels:history": "receive thread replies (and read a thread's earlier ones) in public channels",
    "groups:history": "receive thread replies (and read a thread's earlier ones) in private channels",
    "im:history": "receive direct messages to the bot (message.im) and read their threads",
    "chat:write": "post and edit the agent's replies in threads",
    "files:read": "download images and files attached to messages for the agent",
    "reactions:read": "receive the reactions that interrupt or archive a chat",
    "reactions:write": "mark what the agent works on, what is done and what is queued",
    "commands": "the /coder slash command (link and unlink a Coder account)",
    "users:read": "tell guests and people from other organizations apart (access policy)",
    "usergroups:read": "allow user groups in BRIDGE_ALLOWED_USERS and BRIDGE_ADMINS",
}
