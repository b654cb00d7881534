"""The ``/coder`` slash command: a small table of subcommands, each answered privately.

``link`` opens a modal where a person pastes a Coder token; its submission is checked with Coder
before anything is stored (``relay.identity``), and a refused token is shown as an error on the
field, so the modal stays open to try again. The token never appears in any answer. ``unlink``
forgets it. Opening the form and submitting it each ask the access policy first (a guest may not
link), and each person may have only a few tokens checked in a while (``relay.attempts``);
``unlink`` asks too, but removes the person's own token whatever the answer, which it adds. Other
subcommands are added with ``Router.add`` (each gets a line in ``help``).

Slack wants every command acknowledged within 3 seconds. The acknowledgement carries the answer
when the subcommand has it by ``ACK_WITHIN`` seconds; otherwise it says the bridge is on it, and the
answer follows privately through the command's ``response_url``. The token check waits at most
``link_timeout`` seconds. ``new``, ``list``, ``status``, ``archive`` and ``follow`` are
``link_timeout`` seconds. ``new``, ``plan``, ``list``, ``status`` and ``archive`` are
``relay.chat_commands``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bridge.coder.errors import CoderAuthError, CoderError
from bridge.metrics import Metrics
from bridge.relay.attempts import TooManyAttempts
from bridge.relay.chat_commands import Caller, ChatCommands
from bridge.relay.identity import Identity
from bridge.relay.limits import SlackLimits
from bridge.relay.policy import Act, Policy
from bridge.relay.ports import SlackError
from bridge.slack.defuse import defuse
from bridge.slack.poster import budgeted_call
from bridge.tasks import scoped_task

log = logging.getLogger(__name__)

COMMAND = "/coder"
LINK_CALLBACK = "coder_link"
TOKEN_BLOCK = "token"
TOKEN_ACTION = "token"
MAX_TOKEN = 256
ACK_WITHIN = 2.0
"""Seconds a subcommand may take before the acknowledgement goes without its answer."""


@dataclass(frozen=True)
class CommandCall:
    """One ``/coder`` invocation, reduced to what subcommands need."""

    team_id: str
    channel_id: str
    user_id: str
    args: str
    trigger_id: str
    client: AsyncWebClient


Handler = Callable[[CommandCall], Awaitable[str | None]]
"""Runs a subcommand; returns the private answer (None when it answered another way, e.g. a modal)."""


@dataclass(frozen=True)
class Subcommand:
    """A ``/coder NAME`` entry: what it does (for ``help``) and how."""

    name: str
    summary: str
    run: Handler


@dataclass
class Router:
    """Dispatches ``/coder NAME ARGS`` to its subcommand; unknown names get the help text."""

    subcommands: dict[str, Subcommand] = field(default_factory=dict)

    def add(self, name: str, summary: str, run: Handler) -> None:
        """Register a subcommand (names are matched case-insensitively)."""
        self.subcommands[name.lower()] = Subcommand(name.lower(), summary, run)

    def help(self) -> str:
        """One line per subcommand."""
        lines = [f"• `{COMMAND} {s.name}`: {s.summary}" for s in self.subcommands.values()]
        return "Coder Agents commands:\n" + "\n".join(lines)

    async def dispatch(self, call: CommandCall) -> str | None:
        """Run the subcommand ``call.args`` names; the help text for an empty or unknown one."""
        name, _, rest = call.args.strip().partition(" ")
        subcommand = self.subcommands.get(name.lower())
        if subcommand is None:
            prefix = f"I don't know `{COMMAND} {name}`.\n" if name else ""
            return prefix + self.help()
        return await subcommand.run(
            CommandCall(
                call.team_id, call.channel_id, call.user_id, rest.strip(), call.trigger_id, call.client
            )
        )


def link_modal(channel_id: str, coder_url: str) -> dict[str, Any]:
    """The modal where a person pastes their Coder token (never pre-filled, never echoed)."""
    return {
        "type": "modal",
        "callback_id": LINK_CALLBACK,
        "title": {"type": "plain_text", "text": "Link Coder account"},
        "submit": {"type": "plain_text", "text": "Link"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": channel_id,
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": (
                        f"Chats you start will run with your own account on {coder_url}. Create a token "
                        "with `coder tokens create --name slack` and paste it below. It is checked with "
                        "Coder, stored encrypted, and never shown again; `/coder unlink` removes it."
                    ),
                },
            },
            {
                "type": "input",
                "block_id": TOKEN_BLOCK,
                "label": {"type": "plain_text", "text": "Coder token"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": TOKEN_ACTION,
                    "max_length": MAX_TOKEN,
                    "placeholder": {"type": "plain_text", "text": "paste the token here"},
                },
            },
        ],
    }


def linked_view(username: str) -> dict[str, Any]:
    """What the modal turns into once the token is kept."""
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Link Coder account"},
        "close": {"type": "plain_text", "text": "Done"},
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"✅ Linked to Coder user *{username}*. Chats you start now run as them.",
                },
            }
        ],
    }


def submitted_token(view: Mapping[str, Any]) -> str:
    """The token typed into the link modal ("" when absent)."""
    values = (view.get("state") or {}).get("values") or {}
    value = ((values.get(TOKEN_BLOCK) or {}).get(TOKEN_ACTION) or {}).get("value")
    return value.strip() if isinstance(value, str) else ""


class IdentityCommands:
    """``link``, ``unlink``: a person's own Coder account in linked identity mode."""

    def __init__(
        self,
        identity: Identity,
        policy: Policy,
        limits: SlackLimits,
        metrics: Metrics,
        *,
        coder_url: str,
        link_timeout: float = 2.5,
    ) -> None:
        self._identity = identity
        self._policy = policy
        self._limits = limits
        self._metrics = metrics
        self._coder_url = coder_url
        self._link_timeout = link_timeout

    def register(self, router: Router) -> None:
        """Add ``link`` and ``unlink`` to the ``/coder`` table."""
        router.add("link", "link your own Coder account (chats you start then run as you)", self.link)
        router.add("unlink", "forget your linked Coder account and its token", self.unlink)

    async def link(self, call: CommandCall) -> str | None:
        """Open the token modal (linked mode only)."""
        refusal = await self._policy.refusal(call.user_id, Act.ACCOUNT)
        if refusal is not None:
            return refusal
        if not self._identity.linked:
            return "This bridge runs every chat with its own Coder token, so there is nothing to link."
        modal = link_modal(call.channel_id, self._coder_url)
        try:
            await budgeted_call(
                self._limits,
                self._metrics,
                "views.open",
                lambda: call.client.views_open(trigger_id=call.trigger_id, view=modal),
            )
        except SlackError as exc:
            log.warning("could not open the link modal: %s", exc.code)
            return "I couldn't open the link form; please run `/coder link` again."
        return None

    async def unlink(self, call: CommandCall) -> str:
        """Forget the person's token: also for someone the policy refuses (it is theirs to take back),
        who is told the refusal too."""
        refusal = await self._policy.refusal(call.user_id, Act.ACCOUNT)
        if not self._identity.linked:
            answer = "This bridge runs every chat with its own Coder token; no account of yours is linked."
        elif await self._identity.unlink(call.team_id, call.user_id):
            answer = (
                "Your Coder account is unlinked and its token deleted here. "
                "Chats you already started stay in Coder."
            )
        else:
            answer = "No Coder account of yours was linked."
        return f"{answer} {refusal}" if refusal is not None else answer

    async def submitted(self, team_id: str, user_id: str, token: str) -> dict[str, Any]:
        """The acknowledgement of a link modal submission: field errors, or the confirmation view."""
        refusal = await self._policy.refusal(user_id, Act.ACCOUNT)
        if refusal is not None:
            return _field_error(refusal)
        if not self._identity.linked:
            return _field_error("This bridge doesn't link personal accounts any more.")
        if not token:
            return _field_error("Paste a Coder token.")
        if any(c.isspace() for c in token):
            return _field_error(
                "A Coder token has no spaces; paste it exactly as `coder tokens create` printed it."
            )
        try:
            user = await asyncio.wait_for(self._identity.link(team_id, user_id, token), self._link_timeout)
        except TooManyAttempts as exc:
            return _field_error(str(exc))
        except CoderAuthError:
            return _field_error("Coder refused this token (unknown, expired or revoked). Create a new one.")
        except (CoderError, TimeoutError) as exc:
            log.warning("could not check a token with Coder: %s", type(exc).__name__)
            return _field_error("I couldn't reach Coder to check the token; please try again.")
        return {"response_action": "update", "view": linked_view(user.username)}


def _help(router: Router) -> Handler:
    async def show(_: CommandCall) -> str:
        return router.help()

    return show


def _field_error(text: str) -> dict[str, Any]:
    return {"response_action": "errors", "errors": {TOKEN_BLOCK: text}}


def register_chat_commands(router: Router, chats: ChatCommands) -> None:
    """Add ``new``, ``list``, ``status``, ``archive`` and ``follow`` to the ``/coder`` table."""
    """Add ``new``, ``plan``, ``list``, ``status`` and ``archive`` to the ``/coder`` table."""

    def caller(call: CommandCall) -> Caller:
        return Caller(call.team_id, call.channel_id, call.user_id, call.trigger_id)

    async def new(call: CommandCall) -> str:
        return await chats.new(caller(call), call.args)

    async def plan(call: CommandCall) -> str:
        return await chats.new(caller(call), call.args, plan=True)

    async def listing(call: CommandCall) -> str:
        return await chats.listing(caller(call))

    async def status(call: CommandCall) -> str:
        return await chats.status(caller(call), call.args)

    async def archive(call: CommandCall) -> str:
        return await chats.archive(caller(call), call.args)

    router.add(
        "new", "`/coder new [model=…] [workspace=…] [mcp=…] <task>` starts a chat in a new thread", new
    )
    router.add(
        "plan", "`/coder plan [model=…] … <task>` starts a chat in plan mode: a plan to approve first", plan
    )
    router.add("list", "your chats started from Slack, with status and links", listing)
    router.add(
        "status", "`/coder status [chat id or link]`: your latest chats' status, or one chat's", status
    )
    router.add("archive", "`/coder archive <chat id or link>` archives one of your chats", archive)

    async def follow(call: CommandCall) -> str:
        return await chats.follow(caller(call), call.args)

    router.add(
        "follow", "`/coder follow <chat link or id>` follows a chat started in Coder in a thread here", follow
    )


def register(
    app: AsyncApp, router: Router, identity_commands: IdentityCommands, chats: ChatCommands | None = None
) -> None:
    """Attach ``/coder`` and the link modal's submission to a Bolt app."""
    identity_commands.register(router)
    if chats is not None:
        register_chat_commands(router, chats)
    router.add("help", "this list", _help(router))

    async def coder(ack: Any, command: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        call = CommandCall(
            team_id=str(command.get("team_id", "")),
            channel_id=str(command.get("channel_id", "")),
            user_id=str(command.get("user_id", "")),
            args=str(command.get("text") or ""),
            trigger_id=str(command.get("trigger_id", "")),
            client=client,
        )
        async with scoped_task("coder-command", router.dispatch(call)) as answering:
            answered, _ = await asyncio.wait((answering,), timeout=ACK_WITHIN)
            if not answered:
                await ack(text="⏳ On it…", response_type="ephemeral")
                answer = await answering
                if answer:
                    await respond(text=defuse(answer), response_type="ephemeral", replace_original=False)
                return
            answer = answering.result()
        await ack(text=defuse(answer or ""), response_type="ephemeral" if answer else None)

    async def link_submitted(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = body.get("user") or {}
        team_id = str((body.get("team") or {}).get("id") or user.get("team_id") or "")
        await ack(
            **await identity_commands.submitted(team_id, str(user.get("id", "")), submitted_token(view))
        )

    app.command(COMMAND)(coder)
    app.view(LINK_CALLBACK)(link_submitted)
