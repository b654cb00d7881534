"""The plan an agent proposes in plan mode, and how a client approves it.

In plan mode (``codersdk.ChatPlanModePlan``) the agent writes its plan to a Markdown file and calls
chatd's ``propose_plan`` tool (coder/coder coderd/x/chatd/chattool/proposeplan.go), which stores the
file as a chat file and answers ``{"ok": true, "path", "kind": "plan", "file_id", "media_type"}``.
Coder's UI shows that file with an Implement button, which sends "Implement the plan." and clears
plan mode with it (site AgentChatPage ``handleImplementPlan``: ``plan_mode: ""`` on the message).
"""

from __future__ import annotations

from typing import Any

PROPOSE_PLAN = "propose_plan"
IMPLEMENT = "Implement the plan."
"""What Coder's UI sends when a person approves the plan."""


def plan_file(result: Any) -> str | None:
    """The chat file holding the plan a successful ``propose_plan`` result names, else None."""
    if not isinstance(result, dict) or result.get("kind") != "plan" or result.get("ok") is not True:
        return None
    file_id = result.get("file_id")
    return file_id if isinstance(file_id, str) and file_id else None
