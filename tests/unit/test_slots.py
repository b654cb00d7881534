"""Slot keys: the stored format of every kind, its round trip, the split rule and the post tag."""

from __future__ import annotations

import pytest

from bridge.relay.slots import PostTag, SlotKey, SlotKind

STORED = {
    "draft": (SlotKey.draft(), SlotKind.DRAFT),
    "header": (SlotKey.header(), SlotKind.HEADER),
    "after:12": (SlotKey.reply_after(12), SlotKind.REPLY),
    "partial:0": (SlotKey.partial(0), SlotKind.PARTIAL),
    "card:7": (SlotKey.card(7), SlotKind.CARD),
    "retry:7:2": (SlotKey.retry(7, 2), SlotKind.RETRY),
    "error:9": (SlotKey.error(9), SlotKind.ERROR),
    "outcome:7": (SlotKey.outcome(7), SlotKind.OUTCOME),
    "wait:7:9": (SlotKey.wait(7, 9), SlotKind.WAIT),
    "lost:0": (SlotKey.lost(None), SlotKind.LOST),
    "lost:41": (SlotKey.lost(41), SlotKind.LOST),
    "notice:0123456789ab": (SlotKey.notice("0123456789abcdef"), SlotKind.NOTICE),
    "reply:1700000000.000100": (SlotKey.answer("1700000000.000100"), SlotKind.ANSWER),
    "warnings:1700000000.000100": (SlotKey.warnings("1700000000.000100"), SlotKind.WARNINGS),
    "files:1700000000.000100": (SlotKey.files("1700000000.000100"), SlotKind.FILES),
    "stop:1700000000.000100": (SlotKey.stop("1700000000.000100"), SlotKind.STOP),
    "control:click:U1:1700000000.000100": (SlotKey.control("click:U1:1700000000.000100"), SlotKind.CONTROL),
}


@pytest.mark.parametrize("stored", sorted(STORED))
def test_every_kind_encodes_as_stored_before_and_decodes_back(stored: str) -> None:
    """Each constructor writes the string older versions stored, and decoding it gives the same key."""
    key, kind = STORED[stored]
    assert key.encode() == stored
    assert SlotKey.decode(stored) == key
    assert key.kind is kind


@pytest.mark.parametrize(
    ("stored", "key"),
    [
        ("after:12#2", SlotKey.reply_after(12).part(2)),
        ("draft+1", SlotKey.draft().part(1, slack_counted=True)),
        ("card:7#1+2", SlotKey.card(7).part(1).part(2, slack_counted=True)),
        ("after:3+1+2", SlotKey.reply_after(3).part(1, slack_counted=True).part(2, slack_counted=True)),
    ],
)
def test_split_parts_of_both_kinds_keep_their_stored_form(stored: str, key: SlotKey) -> None:
    """The bridge's own split (``#n``) and Slack's oversize re-split (``+n``) round-trip as stored."""
    assert key.encode() == stored
    assert SlotKey.decode(stored) == key
    assert key.kind is SlotKey.decode(stored.partition("#")[0].partition("+")[0]).kind


def test_the_first_part_is_the_key_itself() -> None:
    """Part 0 of a text is shown under the text's own key, for either split."""
    key = SlotKey.card(7)
    assert key.part(0) == key
    assert key.part(0, slack_counted=True) == key


def test_an_unknown_name_is_kept_as_it_is() -> None:
    """A slot no kind names (written by another version) decodes to OTHER and encodes unchanged."""
    for stored in ("", "something", "later:5#1+1", "x#y"):
        assert SlotKey.decode(stored).encode() == stored
    assert SlotKey.decode("later:5").kind is SlotKind.OTHER


def test_a_post_tag_reads_back_from_message_metadata() -> None:
    """The ``<link id>:<slot>`` metadata tag round-trips; a tag of another shape is not ours."""
    tag = PostTag(12, SlotKey.card(7).part(1))
    assert tag.encode() == "12:card:7#1"
    assert PostTag.decode("12:card:7#1") == tag
    assert PostTag.decode("draft") is None
    assert PostTag.decode("x:draft") is None


@pytest.mark.parametrize(
    ("stored", "draft", "card"),
    [
        ("1:draft", True, False),
        ("1:draft#1", True, False),
        ("1:draft+1", False, False),
        ("1:draft#1+1", True, False),
        ("1:card:2", False, True),
        ("1:card:2#1+1", False, True),
        ("1:after:3", False, False),
    ],
)
def test_a_tag_says_whether_it_is_the_streaming_reply_or_a_card(stored: str, draft: bool, card: bool) -> None:
    """The streaming poster tells drafts and cards apart as it did when it parsed the tag's string."""
    tag = PostTag.decode(stored)
    assert tag is not None
    assert (tag.is_draft, tag.is_card) == (draft, card)
