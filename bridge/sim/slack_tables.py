"""Slack's rules for ``table`` blocks in a message, answered in its words.

Docs "Table block": ``rows`` 1-100 rows of 1-20 cells, each ``raw_text`` or ``rich_text``;
``column_settings`` at most 20 items (or null to skip a column), ``align`` left/center/right,
``is_wrapped`` a boolean. One table a message (``only_one_table_allowed``), and at most 10,000
characters of cell text in a table (slackapi's Block Kit guidance). An empty cell is refused, as
reports say (the stricter reading where the docs say nothing).
"""

from __future__ import annotations

from typing import Any

from bridge.sim.slack_state import JsonDict

MAX_ROWS = 100
MAX_CELLS = 20
MAX_COLUMN_SETTINGS = 20
MAX_CELL_TEXT = 10_000
_ALIGNS = frozenset({"left", "center", "right"})


def tables_error(blocks: list[JsonDict]) -> str | None:
    """What is wrong with the message's table blocks, as ``response_metadata.messages`` says it."""
    at = [index for index, block in enumerate(blocks) if block.get("type") == "table"]
    if len(at) > 1:
        return f"[ERROR] only_one_table_allowed [json-pointer:/blocks/{at[1]}]"
    for index in at:
        problem = _table_problem(blocks[index])
        if problem is not None:
            message, pointer = problem
            return f"[ERROR] {message} [json-pointer:/blocks/{index}{pointer}]"
    return None


def _table_problem(block: JsonDict) -> tuple[str, str] | None:
    rows = block.get("rows")
    if not isinstance(rows, list) or not rows:
        return "must provide at least 1 item", "/rows"
    if len(rows) > MAX_ROWS:
        return f"must be less than {MAX_ROWS + 1} items", "/rows"
    text = 0
    for r, row in enumerate(rows):
        if not isinstance(row, list) or not row:
            return "must provide at least 1 item", f"/rows/{r}"
        if len(row) > MAX_CELLS:
            return f"must be less than {MAX_CELLS + 1} items", f"/rows/{r}"
        for c, cell in enumerate(row):
            length = _cell_length(cell)
            if length is None:
                return "must be a raw_text or rich_text element with text", f"/rows/{r}/{c}"
            text += length
    if text > MAX_CELL_TEXT:
        return f"table cells must hold at most {MAX_CELL_TEXT} characters in total", "/rows"
    return _settings_problem(block.get("column_settings"))


def _cell_length(cell: Any) -> int | None:
    """The characters of a well-formed cell, or None when Slack would refuse it."""
    if not isinstance(cell, dict):
        return None
    if cell.get("type") == "raw_text":
        text = cell.get("text")
        return len(text) if isinstance(text, str) and text else None
    if cell.get("type") == "rich_text":
        elements = cell.get("elements")
        if not isinstance(elements, list) or not elements:
            return None
        texts = [
            str(part.get("text", ""))
            for section in elements
            if isinstance(section, dict)
            for part in section.get("elements") or []
            if isinstance(part, dict)
        ]
        return sum(map(len, texts)) or None
    return None


def _settings_problem(settings: Any) -> tuple[str, str] | None:
    if settings is None:
        return None
    if not isinstance(settings, list) or len(settings) > MAX_COLUMN_SETTINGS:
        return f"must be less than {MAX_COLUMN_SETTINGS + 1} items", "/column_settings"
    for i, setting in enumerate(settings):
        if setting is None:
            continue
        if not isinstance(setting, dict) or set(setting) - {"align", "is_wrapped"}:
            return "must be an object with align and is_wrapped", f"/column_settings/{i}"
        if "align" in setting and setting["align"] not in _ALIGNS:
            return "must be a valid enum value", f"/column_settings/{i}/align"
        if "is_wrapped" in setting and not isinstance(setting["is_wrapped"], bool):
            return "must be a boolean", f"/column_settings/{i}/is_wrapped"
    return None
