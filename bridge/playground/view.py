"""What the playground page shows one person: the simulated Slack as that person sees it, read from
the simulators' state and nothing else.

The page renders what Slack stores (texts, blocks, reactions, files), not what the bridge meant to
post, so a message the bridge shaped wrongly looks wrong here too. It is one JSON document, rebuilt
on every change of either simulator and pushed when it differs from the last one sent, so the page
never has to know which change mattered.
"""

from __future__ import annotations

from typing import Any

from bridge.sim.coder import CoderSim
from bridge.sim.slack import SimChannel, SimMessage, SlackSim

JsonDict = dict[str, Any]

BOT_NAME = "Coder Agents"


def snapshot(slack: SlackSim, coder: CoderSim, user: str) -> JsonDict:
    """Everything the page shows ``user``: their conversations, private answers, Home tab, open
    modal, the agent's status lines, and the Coder chats behind the threads."""
    workspace = slack.workspace
    conversations = [c for c in workspace.channels.values() if user in c.members]
    return {
        "me": user,
        "bot_user_id": slack.bot_user_id,
        "people": [
            {"id": u.id, "name": u.name, "real_name": BOT_NAME if u.id == slack.bot_user_id else u.real_name}
            for u in workspace.users.values()
        ],
        "channels": [_channel(slack, c) for c in conversations],
        "messages": {c.id: [_message(slack, m, user) for m in _messages(slack, c)] for c in conversations},
        "ephemerals": [
            {
                "channel": e.channel,
                "thread_ts": e.thread_ts,
                "ts": e.ts,
                "text": e.markdown_text or e.text,
                "blocks": e.blocks,
            }
            for e in slack.ephemerals(user)
        ],
        "home": slack.home_view(user),
        "modal": slack.modal(user),
        "modal_errors": slack.view_errors(user),
        "status": {
            f"{channel}:{thread}": text for (channel, thread), text in slack.assistant_status.items() if text
        },
        "sessions": {
            f"{s.channel_id}:{s.thread_ts}": {"status": s.status, "title": s.title}
            for s in slack.agent_sessions.values()
            if s.thread_ts is not None
        },
        "chats": [
            {
                "id": chat.id,
                "title": chat.title,
                "status": chat.status,
                "queued": len(chat.queue),
                "thread": chat.labels.get("slack_thread"),
                "pull_request": (chat.diff_status or {}).get("url"),
            }
            for chat in coder.chats.values()
        ],
    }


def _channel(slack: SlackSim, channel: SimChannel) -> JsonDict:
    return {
        "id": channel.id,
        "name": channel.name or BOT_NAME,
        "kind": channel.kind,
        "bot_member": slack.bot_user_id in channel.members,
    }


def _messages(slack: SlackSim, channel: SimChannel) -> list[SimMessage]:
    """A conversation's live messages, replies included, oldest first (a deleted root that kept its
    replies stays as Slack's tombstone)."""
    stored = slack.workspace.messages.get(channel.id, {}).values()
    return sorted((m for m in stored if not m.deleted), key=lambda m: m.ts)


def _message(slack: SlackSim, message: SimMessage, viewer: str) -> JsonDict:
    workspace = slack.workspace
    author = workspace.users.get(message.user or "")
    return {
        "ts": message.ts,
        "thread_ts": message.thread_ts,
        "user": message.user,
        "author": BOT_NAME if message.bot_id else (author.real_name if author else "Slackbot"),
        "bot": message.bot_id is not None,
        "subtype": message.subtype,
        "text": message.visible_text,
        "markdown": message.markdown_text is not None,
        "blocks": message.blocks,
        "files": [
            {"id": f["id"], "name": f.get("name", ""), "mimetype": f.get("mimetype", "")}
            for f in message.files
        ],
        "reactions": [
            {"name": name, "count": len(users), "mine": viewer in users}
            for name, users in message.reactions.items()
        ],
        "edited": message.edited and not message.bot_id,
        "streaming": message.streaming,
        "chunks": message.chunks,
        "replies": 0 if message.is_reply else len(workspace.replies(message)),
    }
