"""The playground's web server: one static page, the state it shows, and the acts a person performs.

Every act goes through the Slack simulator's user API (``user_says``, ``edit``, ``react``, ``click``
…), which signs and delivers the events and interactions exactly as Slack would; the bridge cannot
tell the page from a Slack client. The agent is steered through the Coder simulator's own knobs
(the script of the next turns, a pull request on a chat). The page learns of changes over a
WebSocket that pushes the person's view whenever either simulator's state changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from types import MappingProxyType
from typing import Final

from aiohttp import web

from bridge.demo import Simulation, wait_either
from bridge.playground.view import JsonDict, snapshot
from bridge.sim import scenarios
from bridge.sim.coder_agent import Script
from bridge.sim.slack import SlackSim
from bridge.tasks import scoped_task

AGENTS: Final[Mapping[str, Script]] = MappingProxyType(
    {
        "answer": scenarios.fix_login_bug,
        "slow start": scenarios.slow_start,
        "busy for a while": scenarios.slow,
        "works until stopped": scenarios.stuck,
        "retry": scenarios.retrying,
        "error": scenarios.failing,
        "question": scenarios.asking,
        "long answer": scenarios.long_reply,
    }
)
"""What the page offers for the agent's next turns, by the name it shows."""

_STATIC: Final = ("index.html", "playground.js", "playground.css")
_CONTENT_TYPES: Final = {"html": "text/html", "js": "text/javascript", "css": "text/css"}
_MAX_UPLOAD: Final = 5 << 20
_IDLE_PUSH: Final = 30.0
"""Seconds between re-checks of a person's view when nothing changed (a wait has to end somewhere)."""


class BadRequest(Exception):
    """An act the page asked for that cannot be done; its text is shown to the person."""


class Playground:
    """Serves the page for a running ``Simulation`` on a ``listen`` socket, between ``start`` and ``stop``."""

    def __init__(self, sim: Simulation, listener: socket.socket) -> None:
        self._sim = sim
        self._listener = listener
        self._runner: web.AppRunner | None = None
        self.agent = "answer"
        sim.coder.agent = AGENTS[self.agent]
        _invite_strangers(sim.slack)
        self.visited = asyncio.Event()
        """Set when a page first connected: the scripted demo waits for someone to watch it."""

    async def start(self) -> None:
        """Serve on the socket."""
        app = web.Application(client_max_size=_MAX_UPLOAD)
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/favicon.ico", self._no_icon)
        app.router.add_get("/files/{file_id}", self._file)
        app.router.add_get("/api/live", self._live)
        app.router.add_post("/api/upload", self._upload)
        app.router.add_post("/api/{act}", self._act)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, self._listener).start()

    async def stop(self) -> None:
        """Stop serving; open pages lose their connection."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        """Where a browser opens the page."""
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}/"

    # --- the page and what it reads ------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        return _static_file("index.html")

    async def _no_icon(self, request: web.Request) -> web.Response:
        """The page has no icon; answering keeps a browser's console free of a 404."""
        return web.Response(status=204)

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _STATIC:
            raise web.HTTPNotFound()
        return _static_file(name)

    async def _file(self, request: web.Request) -> web.Response:
        """An attached file's bytes, as a Slack client shows them to a member of the workspace: images
        inline, anything else as a download, so an uploaded page never runs as the playground's own."""
        file = self._sim.slack.workspace.files.get(request.match_info["file_id"])
        if file is None:
            raise web.HTTPNotFound()
        headers = {"X-Content-Type-Options": "nosniff"}
        if not file.mimetype.startswith("image/") or file.mimetype == "image/svg+xml":
            headers["Content-Disposition"] = "attachment"
        return web.Response(body=file.content, content_type=file.mimetype, headers=headers)

    async def _live(self, request: web.Request) -> web.WebSocketResponse:
        """Push the person's view now and after every change, until the page goes away."""
        try:
            user = self._person(request.query.get("user", ""))
        except BadRequest as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        ws = web.WebSocketResponse(heartbeat=20.0)
        await ws.prepare(request)
        self.visited.set()
        async with scoped_task("playground:push", self._push(ws, user)):
            async for _ in ws:  # the page sends nothing; reading is how its leaving is noticed
                pass
        return ws

    async def _push(self, ws: web.WebSocketResponse, user: str) -> None:
        slack, coder = self._sim.slack, self._sim.coder
        sent = ""
        while not ws.closed:
            view = self._view(user)
            if view != sent:
                await ws.send_str(view)
                sent = view

            def changed(shown: str = sent) -> bool:
                return self._view(user) != shown

            with contextlib.suppress(TimeoutError):
                await wait_either(slack, coder, changed, timeout=_IDLE_PUSH)

    def _view(self, user: str) -> str:
        view = snapshot(self._sim.slack, self._sim.coder, user)
        view.update(agent=self.agent, agents=list(AGENTS))
        return json.dumps(view, sort_keys=True)

    # --- what a person does -------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        """Upload a file to Slack as the person, to attach it to their next message."""
        form = await request.post()
        user = self._person(str(form.get("user", "")))
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return _refused("choose a file to attach")
        media_type = upload.content_type.partition(";")[0].strip() or "application/octet-stream"
        file = self._sim.slack.add_file(upload.file.read(), upload.filename or "file", media_type, user=user)
        return web.json_response({"id": file["id"], "name": file["name"], "mimetype": file["mimetype"]})

    async def _act(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _refused("the request is not JSON")
        act = self._acts().get(request.match_info["act"])
        if act is None or not isinstance(body, dict):
            raise web.HTTPNotFound()
        try:
            await act(body)
        except (BadRequest, ValueError) as exc:
            return _refused(str(exc))
        return web.json_response({"ok": True})

    def _acts(self) -> dict[str, Callable[[JsonDict], Awaitable[None]]]:
        return {
            "say": self._say,
            "edit": self._edit,
            "delete": self._delete,
            "react": self._react,
            "click": self._click,
            "home": self._open_home,
            "click_home": self._click_home,
            "submit_view": self._submit_view,
            "close_view": self._close_view,
            "agent": self._steer,
            "pull_request": self._pull_request,
        }

    async def _say(self, body: JsonDict) -> None:
        """A message, a reply in a thread, or a slash command, typed in the composer."""
        slack = self._sim.slack
        user, channel, text = self._person(body.get("user")), _text(body, "channel"), _text(body, "text")
        command, _, rest = text.partition(" ")
        if command == "/coder":
            await slack.slash_command(user, channel, command, rest)
            return
        files = [self._file_json(str(f)) for f in body.get("files") or []]
        if not text.strip() and not files:
            raise BadRequest("type a message or attach a file")
        thread = body.get("thread_ts")
        await slack.user_says(
            user, channel, text, thread_ts=str(thread) if thread else None, files=files, wait_ack=False
        )

    async def _edit(self, body: JsonDict) -> None:
        user, channel, ts = self._person(body.get("user")), _text(body, "channel"), _text(body, "ts")
        await self._sim.slack.edit(user, channel, ts, _text(body, "text"), wait_ack=False)

    async def _delete(self, body: JsonDict) -> None:
        user, channel, ts = self._person(body.get("user")), _text(body, "channel"), _text(body, "ts")
        await self._sim.slack.delete(user, channel, ts, wait_ack=False)

    async def _react(self, body: JsonDict) -> None:
        """Add the reaction, or take it back when the person already added it (as a click does in Slack)."""
        slack = self._sim.slack
        user, channel, ts, name = (
            self._person(body.get("user")),
            _text(body, "channel"),
            _text(body, "ts"),
            _text(body, "name"),
        )
        message = slack.message(channel, ts)
        if message is not None and user in message.reactions.get(name, []):
            await slack.unreact(user, channel, ts, name, wait_ack=False)
        else:
            await slack.react(user, channel, ts, name, wait_ack=False)

    async def _click(self, body: JsonDict) -> None:
        user, channel, ts = self._person(body.get("user")), _text(body, "channel"), _text(body, "ts")
        value = body.get("value")
        await self._sim.slack.click(
            user, channel, ts, _text(body, "action_id"), value=str(value) if value is not None else None
        )

    async def _open_home(self, body: JsonDict) -> None:
        await self._sim.slack.open_home(self._person(body.get("user")))

    async def _click_home(self, body: JsonDict) -> None:
        block = body.get("block_id")
        await self._sim.slack.click_home(
            self._person(body.get("user")), _text(body, "action_id"), block_id=str(block) if block else None
        )

    async def _submit_view(self, body: JsonDict) -> None:
        values = body.get("values")
        if not isinstance(values, dict):
            raise BadRequest("the form's values are missing")
        await self._sim.slack.submit_view(self._person(body.get("user")), values)

    async def _close_view(self, body: JsonDict) -> None:
        await self._sim.slack.close_view(self._person(body.get("user")))

    async def _steer(self, body: JsonDict) -> None:
        """Choose how the agent plays its next turns."""
        name = _text(body, "agent")
        if name not in AGENTS:
            raise BadRequest(f"the agent knows no {name!r}; it knows {', '.join(AGENTS)}")
        self.agent = name
        self._sim.coder.agent = AGENTS[name]

    async def _pull_request(self, body: JsonDict) -> None:
        """The agent of a thread opens a pull request, as Coder reports one it found on the branch."""
        thread = _text(body, "thread_ts")
        chats = self._sim.coder.chats.values()
        chat = next((c for c in chats if c.labels.get("slack_thread") == thread), None)
        if chat is None:
            raise BadRequest("this thread has no Coder chat yet: mention the bot first")
        number = 1 + sum(1 for c in chats if c.diff_status)
        url = f"https://github.com/example/app/pull/{number}"
        self._sim.coder.set_diff(
            chat.id,
            {
                "url": url,
                "pull_request_state": "open",
                "pull_request_title": chat.title,
                "pull_request_draft": False,
                "additions": 12,
                "deletions": 3,
                "changed_files": 2,
            },
            {"branch": f"agent/{chat.id[:8]}", "pull_request_url": url},
        )

    def _person(self, user: object) -> str:
        people = self._sim.slack.workspace.users
        if not isinstance(user, str) or user not in people or people[user].is_bot:
            raise BadRequest("choose who you are: one of the workspace's people")
        return user

    def _file_json(self, file_id: str) -> JsonDict:
        file = self._sim.slack.workspace.files.get(file_id)
        if file is None:
            raise BadRequest("the attached file is gone; attach it again")
        return self._sim.slack.workspace.file_json(file)


GUEST: Final = "U0GUEST"
PARTNER: Final = "U0PARTNER"
PARTNER_CHANNEL: Final = "C0PARTNER"


def _invite_strangers(slack: SlackSim) -> None:
    """Besides Alice and Bob, a guest in #general and a partner from another organization in a
    Slack Connect channel, so that a visitor can see what the access policy tells each of them."""
    slack.add_user(GUEST, "gina", real_name="Gina (guest)", is_restricted=True)
    slack.add_channel(
        PARTNER_CHANNEL,
        "acme-partners",
        is_ext_shared=True,
        members=(slack.alice, slack.bob, slack.bot_user_id),
    )
    slack.add_user(
        PARTNER, "pat", real_name="Pat (Acme, Slack Connect)", team_id="T0ACME", channels=(PARTNER_CHANNEL,)
    )


def listen(port: int) -> socket.socket:
    """A socket listening on 127.0.0.1:``port`` (0: a free one), taken before the simulation starts
    so that a busy port is reported at once; ``OSError`` when it cannot be had."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
    except OSError:
        listener.close()
        raise
    return listener


def _text(body: JsonDict, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise BadRequest(f"{key} is missing")
    return value


def _refused(reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=400)


def _static_file(name: str) -> web.Response:
    text = resources.files("bridge.playground").joinpath(name).read_text(encoding="utf-8")
    return web.Response(text=text, content_type=_CONTENT_TYPES[name.rpartition(".")[2]])
