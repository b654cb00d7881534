"""Slack files -> Coder file parts: download (through the ``FileSource`` port), check, upload.

Each file is judged on its own: one that is too big, of a type this Coder generation does not take,
or refused by Coder is named with the reason, and the others (and the message's text) still go.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from bridge.coder.backend import CoderBackend
from bridge.coder.errors import CoderError
from bridge.coder.types import IMAGE_TYPES, InputPart
from bridge.relay.ports import FileRefused, FileSource, SlackFile
from bridge.slack.failures import render_coder_error

log = logging.getLogger(__name__)

MAX_FILES = 10
"""Files per Coder message; more are named as skipped rather than silently dropped."""


@dataclass(frozen=True)
class Attached:
    """The file parts to send, and each file left out with the reason."""

    parts: tuple[InputPart, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()


class Attachments:
    """Turns a message's Slack files into uploaded Coder files."""

    def __init__(self, files: FileSource, *, organization_id: str | None) -> None:
        self._files = files
        self._organization_id = organization_id
        # Per backend (one per Coder identity in linked mode): its owner's first organization.
        self._organizations: weakref.WeakKeyDictionary[CoderBackend, str] = weakref.WeakKeyDictionary()

    async def upload(self, backend: CoderBackend, files: Sequence[SlackFile]) -> Attached:
        """Upload what can be uploaded, in order, as ``backend``'s owner; never raises for a single bad
        file."""
        parts: list[InputPart] = []
        skipped: list[tuple[str, str]] = []
        for index, file in enumerate(files):
            if index >= MAX_FILES:
                skipped.append((file.name, f"only {MAX_FILES} files go with one message"))
                continue
            try:
                parts.append(InputPart.of_file(await self._upload_one(backend, file)))
            except FileRefused as exc:
                skipped.append((file.name, str(exc)))
            except CoderError as exc:
                log.warning("Coder refused Slack file %s: %s", file.id, exc)
                skipped.append((file.name, f"Coder refused it: {render_coder_error(exc)}"))
        return Attached(tuple(parts), tuple(skipped))

    async def _upload_one(self, backend: CoderBackend, file: SlackFile) -> str:
        fetched = await self._files.fetch(file)
        accepted = backend.accepted_media_types
        if fetched.media_type not in accepted:
            what = "images" if accepted <= IMAGE_TYPES else "images, PDF and text files"
            raise FileRefused(f"{fetched.media_type}; this Coder takes only {what}")
        organization = await self._organization(backend)
        return await backend.upload_file(organization, fetched.data, fetched.media_type, fetched.name)

    async def _organization(self, backend: CoderBackend) -> str:
        """``CODER_ORGANIZATION_ID``, else the token owner's first organization, looked up once."""
        if self._organization_id is not None:
            return self._organization_id
        if backend not in self._organizations:
            organizations = (await backend.whoami()).organization_ids
            self._organizations[backend] = organizations[0] if organizations else ""
        return self._organizations[backend]
