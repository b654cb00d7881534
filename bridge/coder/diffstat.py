"""Which files a unified diff touches and by how many lines: what a diff summary lists.

Coder's ``GET /diff`` answers with the raw ``git diff`` text (reference 3.8). Reading it is left to
``unidiff``, which already knows git's renames, binary files, quoted paths and ``/dev/null`` sides
that a hand-written scan of ``diff --git`` lines would get wrong.
"""

from __future__ import annotations

import logging

from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet

from bridge.coder.types import FileChange

log = logging.getLogger(__name__)


def changed_files(diff: str) -> tuple[FileChange, ...]:
    """The files of ``diff`` in its order; an unreadable diff lists none rather than failing."""
    if not diff.strip():
        return ()
    try:
        patch = PatchSet(diff)
    except UnidiffParseError:  # its message quotes the diff, which is file content: not logged
        log.warning("Coder sent a diff that could not be read; its summary lists no files")
        return ()
    return tuple(FileChange(path=f.path, additions=f.added, deletions=f.removed) for f in patch)
