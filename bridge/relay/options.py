"""Options at the start of a task: ``model=… workspace=… mcp=a,b plan=true fix the login bug``.

``split_options`` takes the leading ``key=value`` words off a prompt (pure); ``resolve`` turns them
into Coder ids with the generation's listings (``CoderBackend.choices``). Anything wrong, an
unknown key, an empty or repeated value, a name Coder does not list, one Coder lists but cannot
use now (a disabled MCP server, a model whose provider is unavailable: said with Coder's reason),
or an option this Coder generation cannot take, becomes one message for the person that lists the
valid values, and no chat is created: a task run with a model or workspace other than the one
asked for would be worse than none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import get_args

from bridge.coder.backend import CoderBackend
from bridge.coder.errors import CoderError
from bridge.coder.types import ChatOption, ChatOptions, Choice
from bridge.slack.failures import render_coder_error

OPTIONS: tuple[ChatOption, ...] = get_args(ChatOption)
_WORD = re.compile(r"\s*([A-Za-z_][\w-]*)=(\S*)")
_YES_NO = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
"""What ``plan=`` takes."""
PLAN_MODE_VERSION = "Coder 2.37 or later, with the promoted Chats API"
"""Which Coder has plan mode, for a refusal. UNCERTAIN: the first release with ``plan_mode``; it is in
the promoted API's chat (codersdk ``Chat.PlanMode``), which no experimental build has."""
_SHOWN = 15
"""Valid values listed in an answer at most (a deployment can have many workspaces)."""
_WHY_UNUSABLE = {
    "disabled": "an administrator disabled it in Coder",
    "missing_api_key": "its provider has no API key set in Coder",
    "user_api_key_required": (
        "its provider needs your own API key: add it in Coder (your account's AI provider keys)"
    ),
    "fetch_failed": "Coder could not reach its provider",
}
"""``Choice.unavailable`` reasons in words; Coder's ``ChatModelProviderUnavailableReason`` values."""


class OptionError(Exception):
    """Why the options of a task cannot be used, in words for the person who wrote them."""


@dataclass(frozen=True)
class Requested:
    """Options as typed: ``model``/``workspace`` one name each, ``mcp`` a list."""

    values: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.values)


def split_options(text: str) -> tuple[Requested, str]:
    """The options at the start of ``text`` and the rest (the prompt); ``OptionError`` if malformed."""
    values: dict[str, tuple[str, ...]] = {}
    rest = text
    while match := _WORD.match(rest):
        key, value = match.group(1).lower(), match.group(2)
        if key not in OPTIONS:
            raise OptionError(f"`{key}=` is not an option. {usage()}")
        if key in values:
            raise OptionError(f"`{key}=` is given twice. {usage()}")
        items = tuple(value.split(",")) if key == "mcp" else (value,)
        if not value or not all(items):
            raise OptionError(f"`{key}=` needs a value. {usage()}")
        if key == "plan" and value.lower() not in _YES_NO:
            raise OptionError(f"`plan=` takes `true` or `false`, not `{value}`. {usage()}")
        values[key] = items
        rest = rest[match.end() :]
    return Requested(values), rest.strip()


def usage() -> str:
    """How options are written."""
    return (
        "Options go first, before the task: `model=NAME`, `workspace=NAME`, `mcp=NAME,NAME`, "
        "`plan=true` (e.g. `model=gpt-5 fix the login bug`)."
    )


def _listing(choices: list[Choice]) -> str:
    names = [f"`{c.name}`" for c in choices[:_SHOWN]]
    more = f" and {len(choices) - _SHOWN} more" if len(choices) > _SHOWN else ""
    return ", ".join(names) + more if names else "none"


async def resolve(backend: CoderBackend, requested: Requested) -> ChatOptions:
    """Coder ids for the requested options; ``OptionError`` naming the valid values otherwise."""
    missing = [key for key in requested.values if key not in backend.capabilities.options]
    if "plan" in missing:
        raise OptionError(
            f"This Coder has no plan mode (it comes with {PLAN_MODE_VERSION}), so nothing was started. "
            "Send the task again without `plan=`."
        )
    if missing:
        names = ", ".join(f"`{key}=`" for key in missing)
        raise OptionError(
            f"This Coder's chat API cannot set {names} for a chat (it uses the deployment's defaults), "
            "so nothing was started. Send the task again without it."
        )
    found: dict[str, tuple[str, ...]] = {}
    plan = _YES_NO[requested.values.get("plan", ("false",))[0].lower()]
    for key, typed in requested.values.items():
        if key == "plan":
            continue
        option: ChatOption = key  # type: ignore[assignment]  # checked against OPTIONS when split
        try:
            choices = await backend.choices(option)
        except CoderError as exc:
            reason = (
                f"I couldn't read the {key} list from Coder ({render_coder_error(exc)}), "
                "so nothing was started."
            )
            raise OptionError(reason) from exc
        usable = [c for c in choices if not c.unavailable]
        ids = []
        for name in typed:
            choice = next((c for c in choices if c.matches(name)), None)
            if choice is None:
                raise OptionError(f"Coder has no {key} `{name}`. Valid: {_listing(usable)}.")
            if choice.unavailable:
                why = _WHY_UNUSABLE.get(choice.unavailable, f"it is unavailable ({choice.unavailable})")
                raise OptionError(
                    f"Coder can't use the {key} `{choice.name}` now: {why}; nothing was started. "
                    f"Valid: {_listing(usable)}."
                )
            ids.append(choice.id)
        found[key] = tuple(dict.fromkeys(ids))
    return ChatOptions(
        model=found.get("model", (None,))[0],
        workspace=found.get("workspace", (None,))[0],
        mcp=found.get("mcp", ()),
        plan=plan,
    )
