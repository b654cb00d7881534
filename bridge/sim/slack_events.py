"""Builders for what Slack sends *to* the app: event callbacks, block_actions and slash-command payloads.

Shapes follow reference sections 2 and 8 field by field, because the bridge parses exactly these; the
builders are pure functions of the workspace state so every transport (HTTP or Socket Mode) carries the
same bytes.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import time
from typing import Any

from bridge.sim.slack_state import (
    APP_ID,
    BOT_USER_ID,
    JsonDict,
    SimChannel,
    SimMessage,
    Workspace,
)


class EventFactory:
    """Makes Slack payloads for one workspace, numbering event ids so each delivery is traceable."""

    def __init__(self, workspace: Workspace, *, verification_token: str) -> None:
        self._ws = workspace
        self.verification_token = verification_token
        self.org_install = False
        """The app is installed org-wide (one token for every workspace of the org)."""
        self._ids = itertools.count(1)

    def callback(self, event: JsonDict, *, channel: SimChannel | None) -> JsonDict:
        """Wrap an inner event in the ``event_callback`` envelope (reference 2.1) with a fresh event_id.

        In a Slack Connect channel the outer ``team_id`` is the team of whoever acted (the author of
        a message, its edit or deletion, or of a reaction), not the installation's, which stays in
        ``authorizations`` (bolt-python's tests/scenario_tests_async/test_events_shared_channels.py
        payloads, and its slack_bolt/request/internals.py reading ``authorizations[0]`` for them).

        On Grid the envelope names the org (``enterprise_id``, ``context_enterprise_id``) and the
        workspace the event happened in (``context_team_id``); delivered to an org-wide install, its
        authorization names no team (bolt-python's org-level app_mention body, transcribed in
        tests/fixtures/slack/org_app_mention_event.json).
        """
        team = channel.team if channel is not None else self._ws.team_id
        org = self._ws.enterprise_id
        context = {"et": event.get("type"), "tid": team, "aid": APP_ID}
        if channel is not None:
            context["cid"] = channel.id
        encoded = base64.urlsafe_b64encode(json.dumps(context, separators=(",", ":")).encode()).decode()
        envelope: JsonDict = {
            "token": self.verification_token,
            "team_id": self._acting_team(event, channel),
            "context_team_id": team,
            "context_enterprise_id": org,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev0SIM{next(self._ids):06d}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": org,
                    "team_id": None if self.org_install else team,
                    "user_id": self._ws.bot_of(team)[0],
                    "is_bot": True,
                    "is_enterprise_install": self.org_install,
                }
            ],
            "is_ext_shared_channel": bool(channel and channel.is_ext_shared),
            "event_context": "4-" + encoded.rstrip("="),
        }
        if org is not None:
            envelope["enterprise_id"] = org
        return envelope

    def _installation(self, channel: SimChannel | None) -> JsonDict:
        """The team and org fields of an interaction payload, as the installation sees them."""
        org = self._ws.enterprise_id
        team = channel.team if channel is not None else self._ws.team_id
        return {
            "team": {"id": team, "domain": self._ws.domain},
            "enterprise": None if org is None else {"id": org, "name": "Example Org"},
            "is_enterprise_install": self.org_install,
        }

    def message(self, message: SimMessage, channel: SimChannel) -> JsonDict:
        """A ``message`` event (plain, thread reply, file_share or bot post) for a stored message."""
        event = self._pushed(message, channel)
        event.update(channel=channel.id, event_ts=message.ts, channel_type=channel.channel_type)
        return event

    def app_mention(self, message: SimMessage, channel: SimChannel) -> JsonDict:
        """The ``app_mention`` twin of a user message that mentions the bot (reference 2.2)."""
        event = self._pushed(message, channel)
        event.update(type="app_mention", channel=channel.id, event_ts=message.ts)
        event.pop("subtype", None)
        return event

    def _pushed(self, message: SimMessage, channel: SimChannel) -> JsonDict:
        """A stored message as an event carries it: external users' messages name their team, and in
        a Slack Connect channel each file is a stub the app must look up with ``files.info`` (Slack's
        "check_file_info"; the history methods still return whole file objects). The stub has no
        ``mode``: Slack has sent it with ``mode: file_access`` too (MercuryTechnologies/slack-web's
        tests/golden/SlackWebhookEvent/message_file_share_slack_connect.json), and ``file_access``
        is what both carry."""
        event = self._ws.message_json(message)
        self._add_source_team(event, message.user)
        if channel.is_ext_shared and message.files:
            event["files"] = [
                {"id": f["id"], "file_access": "check_file_info", "created": 0, "timestamp": 0, "user": ""}
                for f in message.files
            ]
        return event

    def message_changed(self, message: SimMessage, channel: SimChannel, previous: JsonDict) -> JsonDict:
        """A hidden ``message_changed`` event; its own ts is the edit time, the message keeps its ts."""
        event_ts = message.edited_ts or self._ws.clock.next()
        return {
            "type": "message",
            "subtype": "message_changed",
            "hidden": True,
            "channel": channel.id,
            "channel_type": channel.channel_type,
            "ts": event_ts,
            "event_ts": event_ts,
            "message": self._ws.message_json(message),
            "previous_message": previous,
        }

    def message_deleted(self, message: SimMessage, channel: SimChannel, previous: JsonDict) -> JsonDict:
        """A hidden ``message_deleted`` event naming the removed message in ``deleted_ts``."""
        event_ts = self._ws.clock.next()
        return {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "channel": channel.id,
            "channel_type": channel.channel_type,
            "ts": event_ts,
            "event_ts": event_ts,
            "deleted_ts": message.ts,
            "previous_message": previous,
        }

    def reaction(self, kind: str, user: str, message: SimMessage, name: str) -> JsonDict:
        """A ``reaction_added`` / ``reaction_removed`` event on a message (reference 2.4)."""
        event: JsonDict = {"type": kind, "user": user, "reaction": name}
        if message.user is not None:
            event["item_user"] = message.user
        event["item"] = {"type": "message", "channel": message.channel, "ts": message.ts}
        event["event_ts"] = self._ws.clock.next()
        return event

    def agent_session_stopped(self, user: str, channel: str, thread_ts: str, streams: list[str]) -> JsonDict:
        """A person clicked Stop on a ``processing`` session (reference 12.2); ``streams`` are the app's
        streamed messages Slack stopped with it."""
        return {
            "type": "agent_session_stopped",
            "user": user,
            "channel": channel,
            "thread_ts": thread_ts,
            "streaming_message_ts": streams,
            "event_ts": self._ws.clock.next(),
        }

    def agent_session_title_changed(
        self, user: str, channel: str, thread_ts: str, title: str, previous: str | None
    ) -> JsonDict:
        """A person renamed a session (reference 12.2); ``previous_title`` only when it had one."""
        event: JsonDict = {
            "type": "agent_session_title_changed",
            "user": user,
            "team_id": self._ws.team_id,
            "channel": channel,
            "thread_ts": thread_ts,
            "title": title,
            "event_ts": self._ws.clock.next(),
        }
        if previous is not None:
            event["previous_title"] = previous
        return event

    def app_home_opened(self, user: str, channel: SimChannel, tab: str) -> JsonDict:
        """An ``app_home_opened`` event; ``view`` only when a Home view was published for the user."""
        event: JsonDict = {
            "type": "app_home_opened",
            "user": user,
            "channel": channel.id,
            "tab": tab,
            "event_ts": self._ws.clock.next(),
        }
        view = self._ws.home_views.get(user)
        if view is not None:
            event["view"] = view
        return event

    def block_actions(
        self,
        user: str,
        channel: SimChannel,
        message: SimMessage,
        action: JsonDict,
        *,
        response_url: str,
    ) -> JsonDict:
        """A ``block_actions`` payload for a button click on a message (reference 8.1)."""
        container: JsonDict = {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": channel.id,
            "is_ephemeral": False,
        }
        if message.thread_ts is not None:
            container["thread_ts"] = message.thread_ts
        return {
            "type": "block_actions",
            "user": self._user_ref(user),
            "api_app_id": APP_ID,
            "token": self.verification_token,
            "container": container,
            "trigger_id": self.trigger_id(),
            **self._installation(channel),
            "channel": {"id": channel.id, "name": channel.name or "directmessage"},
            "message": self._ws.message_json(message),
            "state": {"values": {}},
            "response_url": response_url,
            "actions": [dict(action, action_ts=f"{time.time():.6f}")],
        }

    def message_action(
        self, user: str, channel: SimChannel, message: SimMessage, callback_id: str, *, response_url: str
    ) -> JsonDict:
        """A message shortcut's ``message_action`` payload (Slack's "Shortcuts payloads" reference)."""
        return {
            "type": "message_action",
            "token": self.verification_token,
            "action_ts": f"{time.time():.6f}",
            **self._installation(channel),
            "user": self._user_ref(user),
            "channel": {"id": channel.id, "name": channel.name or "directmessage"},
            "callback_id": callback_id,
            "trigger_id": self.trigger_id(),
            "response_url": response_url,
            "message_ts": message.ts,
            "message": self._ws.message_json(message),
        }

    def view_block_actions(self, user: str, view: JsonDict, action: JsonDict) -> JsonDict:
        """A ``block_actions`` payload for a click in a view (the App Home tab, a modal): the container
        is the view, which comes whole; there is no channel, message or ``response_url``."""
        return {
            "type": "block_actions",
            "user": self._user_ref(user),
            "api_app_id": APP_ID,
            "token": self.verification_token,
            "container": {"type": "view", "view_id": view["id"]},
            "trigger_id": self.trigger_id(),
            "team": {"id": self._ws.team_id, "domain": self._ws.domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "view": view,
            "actions": [dict(action, action_ts=f"{time.time():.6f}")],
        }

    def slash_command(
        self, user: str, channel: SimChannel, command: str, text: str, *, response_url: str
    ) -> dict[str, str]:
        """The fields of a slash-command request (reference 8.2); no thread_ts, as in Slack."""
        org = self._ws.enterprise_id
        grid = {} if org is None else {"enterprise_id": org, "enterprise_name": "Example Org"}
        return grid | {
            "token": self.verification_token,
            "team_id": channel.team,
            "team_domain": self._ws.domain,
            "channel_id": channel.id,
            "channel_name": channel.name or "directmessage",
            "user_id": user,
            "user_name": self._ws.users[user].name if user in self._ws.users else user,
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "true" if self.org_install else "false",
            "response_url": response_url,
            "trigger_id": self.trigger_id(),
        }

    def view_submission(
        self, user: str, view: JsonDict, values: dict[str, dict[str, JsonDict]], *, trigger_id: str
    ) -> JsonDict:
        """A ``view_submission`` payload for a modal submitted with these input ``values``."""
        return {
            "type": "view_submission",
            "team": {"id": self._ws.team_id, "domain": self._ws.domain},
            "user": self._user_ref(user),
            "api_app_id": APP_ID,
            "token": self.verification_token,
            "trigger_id": trigger_id,
            "view": dict(view, state={"values": values}),
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }

    def view_closed(self, user: str, view: JsonDict) -> JsonDict:
        """A ``view_closed`` payload: the person closed a modal that asked to hear of it; with the
        whole stack closed, ``is_cleared`` is true."""
        return {
            "type": "view_closed",
            "team": {"id": self._ws.team_id, "domain": self._ws.domain},
            "user": self._user_ref(user),
            "api_app_id": APP_ID,
            "token": self.verification_token,
            "view": view,
            "is_cleared": True,
            "is_enterprise_install": False,
            "enterprise": None,
        }

    @staticmethod
    def trigger_id() -> str:
        """A trigger id in Slack's ``<digits>.<digits>.<hex>`` shape."""
        return f"{int(time.time() * 1000)}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}"

    def _user_ref(self, user_id: str) -> JsonDict:
        user = self._ws.users.get(user_id)
        name = user.name if user else user_id
        return {
            "id": user_id,
            "username": name,
            "name": name,
            "team_id": user.team_id if user else self._ws.team_id,
        }

    def _acting_team(self, event: JsonDict, channel: SimChannel | None) -> str:
        """The outer ``team_id`` of an event: the channel's workspace, or in a Slack Connect channel
        the team of whoever acted."""
        if channel is None:
            return self._ws.team_id
        if not channel.is_ext_shared:
            return channel.team
        about = event.get("previous_message")
        author = about.get("user") if isinstance(about, dict) else None
        user = self._ws.users.get(str(event.get("user") or author or ""))
        return user.team_id if user is not None else channel.team

    def _add_source_team(self, event: JsonDict, user_id: str | None) -> None:
        """External users' messages say which organisation they come from (reference 10.3)."""
        user = self._ws.users.get(user_id) if user_id else None
        if user is not None and not self._ws.in_org(user):
            event.update(team=user.team_id, user_team=user.team_id, source_team=user.team_id)


def find_action(blocks: list[JsonDict], action_id: str) -> JsonDict | None:
    """The interactive element with ``action_id`` in a message's or a view's blocks, as a block_actions
    entry (a URL button's click is sent too: Slack wants every click acknowledged)."""
    for block in blocks:
        candidates: list[Any] = list(block.get("elements", []))
        if "accessory" in block:
            candidates.append(block["accessory"])
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                action = {
                    key: element[key]
                    for key in ("type", "action_id", "text", "value", "style")
                    if key in element
                }
                action["block_id"] = block.get("block_id", "")
                return action
    return None


def is_bot_mention(text: str, bot_user_id: str = BOT_USER_ID) -> bool:
    """Whether the text mentions the app's bot user (of the conversation's workspace) the way Slack
    encodes mentions."""
    return f"<@{bot_user_id}>" in text
