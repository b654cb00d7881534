"""Files the agent attaches (screenshots, reports, logs), posted into the chat's thread exactly once.

Coder's ``attach_file`` tool (and the computer-use screenshot) store a chat file and name it in the
assistant's message as a ``file`` part. A chat's follow records each such file with the stream cursor
that passes the message (table ``agent_file``), so none is missed or recorded twice; this worker
then takes each recorded file of a thread in turn, oldest first: it downloads the file from Coder
with the chat owner's token and posts it with Slack's external upload (an image shows inline).
A file larger than ``BRIDGE_AGENT_FILE_MAX_BYTES``, one Coder will not hand over, or one Slack
refuses is linked instead, in a line that says why (an outbox text keyed by the file, so it is
stored once and posted once).

Exactly once across restarts: the file's row says how far it got. Once Slack gave the upload its
file id the row keeps it ("uploading"); a restart then asks Slack whether that file reached the
thread (``files.info``), and only if not uploads it again. A crash after Slack shared the file and
before the row was marked done therefore costs a ``files.info`` call, never a second post.
The file's bytes are held in memory only for the upload, and are never logged.

Before it posts, the worker waits briefly for what the thread already shows to be delivered, so a
file lands below the reply that announced it, as in Coder's own view.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from bridge.coder.backend import CoderBackend
from bridge.coder.errors import CoderError
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import AgentFile
from bridge.relay.identity import Identity
from bridge.relay.links import thread_ref
from bridge.relay.outbox import Outbox, ThreadRef, final_text
from bridge.relay.ports import FileUploads, SlackError, SlackPermanent, SlackRateLimited
from bridge.relay.slots import SlotKey
from bridge.slack.blocks import format_bytes, render_file_linked
from bridge.slack.failures import render_coder_error
from bridge.slack.workspaces import act_for
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)

_TRIES = 4
"""Attempts at an upload Slack or the network failed for a while, before the file is linked instead."""
_ORDER_WAIT = 10.0
"""Seconds a file waits for the thread's earlier messages to be shown before it goes anyway."""
_REFUSALS = {
    "missing_scope": "the Slack app may not upload files (it needs the files:write scope)",
    "not_in_channel": "the bot is not in this channel",
    "is_archived": "the channel is archived",
    "channel_not_found": "Slack does not let the bot post files here",
}


class AgentFiles:
    """Posts the files recorded for each thread, one thread's files at a time, in their order."""

    def __init__(
        self,
        db: Database,
        identity: Identity,
        outbox: Outbox,
        uploads: FileUploads,
        *,
        max_bytes: int,
        retry_delay: float = 1.0,
    ) -> None:
        self._db = db
        self._identity = identity
        self._outbox = outbox
        self._uploads = uploads
        self._max_bytes = max_bytes
        self._retry_delay = retry_delay
        self._busy: set[int] = set()
        self._again: set[int] = set()
        self._tasks = TaskGroup("agent-files")

    def wake(self, ref: ThreadRef) -> None:
        """Files were recorded for the thread: post them (after those being posted, if any)."""
        if ref.link_id in self._busy:
            self._again.add(ref.link_id)
            return
        self._busy.add(ref.link_id)
        self._tasks.spawn(str(ref.link_id), self._run(ref))

    async def resume(self) -> int:
        """At start: post the files recorded and not posted before the stop; how many threads have some."""
        async with self._db.unit() as session:
            rows = await repo.find_unfinished_agent_files(session)
            links = [await repo.find_link(session, link_id) for link_id in {row.link_id for row in rows}]
        for link in links:
            if link is not None:
                self.wake(thread_ref(link))
        return len(links)

    async def close(self) -> None:
        """Stop (shutdown): a file not yet posted is posted at the next start."""
        await self._tasks.cancel()

    async def _run(self, ref: ThreadRef) -> None:
        act_for(ref.workspace)  # this task posts the thread's files, in its workspace
        try:
            while True:
                self._again.discard(ref.link_id)
                async with self._db.unit() as session:
                    rows = await repo.find_unfinished_agent_files(session, ref.link_id)
                    link = await repo.find_link(session, ref.link_id)
                backend = await self._identity.backend_for_link(link) if link is not None else None
                for row in rows:
                    await self._deliver(ref, backend, row)
                if ref.link_id not in self._again:
                    return
        except Exception:
            log.exception("posting the agent's files into thread %s failed", ref.thread_ts)
        finally:
            self._busy.discard(ref.link_id)

    async def _deliver(self, ref: ThreadRef, backend: CoderBackend | None, row: AgentFile) -> None:
        """One file into the thread, or the line that says why not."""
        assert row.id is not None
        if backend is None:
            await self._link(ref, row, "", "the chat's owner has no Coder account linked to the bridge")
            return
        url = backend.file_url(row.coder_file_id)
        if row.state == repo.AGENT_FILE_UPLOADING and await self._arrived(ref, row):
            await self._mark(row.id, repo.AGENT_FILE_DONE)
            return
        try:
            data, _ = await backend.download_file(row.coder_file_id)
        except CoderError as exc:
            await self._link(ref, row, url, f"Coder did not hand it over ({render_coder_error(exc)})")
            return
        if len(data) > self._max_bytes:
            limit = format_bytes(self._max_bytes)
            reason = f"it is {format_bytes(len(data))}, more than the {limit} this bridge posts into Slack"
            await self._link(ref, row, url, reason)
            return
        await self._after_earlier_messages(ref)
        failure = await self._upload(ref, row, data)
        if failure is None:
            await self._mark(row.id, repo.AGENT_FILE_DONE)
        else:
            await self._link(ref, row, url, failure)

    async def _upload(self, ref: ThreadRef, row: AgentFile, data: bytes) -> str | None:
        """Slack's three steps, tried again while Slack or the network fails for a while; why it
        could not be posted, or None once it is in the thread."""
        assert row.id is not None
        name = row.name or "file"
        last: SlackError | None = None
        for attempt in range(_TRIES):
            if last is not None:
                wait = (
                    last.retry_after if isinstance(last, SlackRateLimited) else self._retry_delay * 2**attempt
                )
                await asyncio.sleep(wait)
            try:
                upload = await self._uploads.begin(name, len(data))
                await self._mark(row.id, repo.AGENT_FILE_UPLOADING, slack_file_id=upload.file_id)
                row.state, row.slack_file_id = repo.AGENT_FILE_UPLOADING, upload.file_id
                await self._uploads.send(upload, data)
                await self._uploads.share(upload, name, ref.channel, ref.thread_ts)
                return None
            except SlackPermanent as exc:
                return f"Slack refused it: {_REFUSALS.get(exc.code, exc.code)}"
            except SlackError as exc:
                log.info("upload of an agent file to %s failed (%s); trying again", ref.channel, exc)
                last = exc
        return f"Slack kept failing ({last.code if last is not None else 'unknown'})"

    async def _arrived(self, ref: ThreadRef, row: AgentFile) -> bool:
        """Whether an upload begun before a restart reached the thread (if Slack cannot say, it did
        not: uploading again risks a second copy only where Slack also lost track of the first)."""
        if not row.slack_file_id:
            return False
        try:
            return await self._uploads.shared_in(row.slack_file_id, ref.channel)
        except SlackError as exc:
            log.info("could not ask Slack about file %s: %s", row.slack_file_id, exc)
            return False

    async def _after_earlier_messages(self, ref: ThreadRef) -> None:
        """Wait a little for what the thread already shows (the reply that attached the file)."""
        try:
            await self._outbox.delivered(ref, await self._outbox.slot_keys(ref), timeout=_ORDER_WAIT)
        except TimeoutError:
            log.info("posting an agent file into %s before earlier messages are shown", ref.thread_ts)

    async def _link(self, ref: ThreadRef, row: AgentFile, url: str, reason: str) -> None:
        """The line standing for a file not posted, stored with the row's end in one transaction."""
        assert row.id is not None
        text = render_file_linked(row.name, reason, url)
        slot = SlotKey.agent_file(row.coder_file_id).encode()
        write = partial(repo.set_agent_file_state, file_id=row.id, state=repo.AGENT_FILE_DONE)
        await self._outbox.put_with(ref, [final_text(slot, text)], write)

    async def _mark(self, file_id: int, state: str, *, slack_file_id: str = "") -> None:
        async with self._db.unit() as session:
            await repo.set_agent_file_state(session, file_id, state, slack_file_id=slack_file_id)
