"""The migration files list in the order of their revision chain, a chain with no branches."""

from __future__ import annotations

from pathlib import Path

from alembic.script import Script, ScriptDirectory

from bridge.db.migrate import alembic_config


def _scripts() -> list[Script]:
    return list(ScriptDirectory.from_config(alembic_config()).walk_revisions("base", "heads"))


def test_migration_files_are_numbered_by_their_place_in_the_revision_chain() -> None:
    """Sorted by name, the files are the chain from the first revision to the head, numbered 1, 2, …"""
    chain = list(reversed(_scripts()))
    names = [Path(script.path).name for script in chain]
    assert names == sorted(names)
    assert [int(name[:4]) for name in names] == list(range(1, len(chain) + 1))


def test_every_revision_but_the_head_has_exactly_one_child() -> None:
    """One root, one head, and every other revision revised by exactly one: the chain never branches."""
    scripts = _scripts()
    heads = [s.revision for s in scripts if not s.nextrev]
    assert len(heads) == 1
    assert [s.revision for s in scripts if s.down_revision is None] == ["0001"]
    assert all(len(s.nextrev) == 1 for s in scripts if s.revision not in heads)
    assert all(isinstance(s.down_revision, str | None) for s in scripts)
