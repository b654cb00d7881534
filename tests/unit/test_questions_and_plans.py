"""The agent's questions and plans: reading them from Coder's wire, the answers sent back, how the
thread shows them, and the ``plan=`` option."""

from __future__ import annotations

import pytest

from bridge.coder.plans import plan_file
from bridge.coder.questions import Answer, answer_in_words, answer_result, answers_in, asks, read_questions
from bridge.coder.types import Message, Part, Question, QuestionOption
from bridge.relay.options import OptionError, split_options
from bridge.slack.blocks import render_plan, render_question

ARGS = {
    "questions": [
        {
            "header": "Database",
            "question": "Which database?",
            "options": [
                {"label": "Postgres", "description": "Production."},
                {"label": " ", "description": "a blank label is no answer"},
                {"label": "SQLite"},
            ],
        }
    ]
}
DATABASE = Question(
    header="Database",
    text="Which database?",
    options=(QuestionOption(label="Postgres", description="Production."), QuestionOption(label="SQLite")),
)


def test_questions_are_read_from_the_tools_arguments() -> None:
    """Each question with the answers it offers; what does not read as questions gives none."""
    assert read_questions(ARGS) == (DATABASE,)
    assert read_questions({"questions": [{"header": "x"}]}) == ()
    assert read_questions("not arguments") == ()
    assert read_questions(None) == ()


def test_answers_go_back_in_the_clis_shape() -> None:
    """A chosen answer names its label; words of one's own are free-form."""
    chosen = answer_result("toolu_1", [DATABASE], [Answer("SQLite", option=True)])
    assert chosen.tool_call_id == "toolu_1"
    assert chosen.output == {
        "answers": [
            {
                "header": "Database",
                "question": "Which database?",
                "answer": "SQLite",
                "option_label": "SQLite",
                "freeform": False,
            }
        ]
    }
    words = answer_result("toolu_1", [DATABASE], [Answer("MySQL", option=False)])
    assert words.output["answers"][0]["freeform"] is True
    assert "option_label" not in words.output["answers"][0]
    assert answers_in(words.output) == "MySQL"
    assert answers_in("Tool execution timed out") == "Tool execution timed out"


def test_a_reply_that_answered_is_found_again() -> None:
    """The message holding a free-form answer with the reply's words is the one that relayed it."""
    result = answer_result("toolu_1", [DATABASE], [Answer("MySQL", option=False)]).output
    tool = Message(
        id=7,
        role="tool",
        content=(
            Part(type="tool-result", tool_call_id="toolu_1", tool_name="ask_user_question", result=result),
        ),
    )
    assert answer_in_words([tool], "MySQL") == tool
    assert answer_in_words([tool], "Postgres") is None


def test_chatds_own_question_is_told_from_a_clients_answer() -> None:
    """In plan mode chatd's tool answers with the questions (object or JSON text), not with answers."""
    assert asks({"questions": []})
    assert asks('{"questions": []}')
    assert not asks({"answers": []})
    assert not asks("Tool execution timed out")


def test_a_question_shows_its_answers_and_how_to_answer() -> None:
    """One question with answers: click or reply; several: reply; once over, the closing line."""
    text = render_question([DATABASE])
    assert text.splitlines() == [
        "❓ *Database* · Which database?",
        "• *Postgres* — Production.",
        "• *SQLite*",
        "_Click an answer, or reply in this thread to answer in your own words._",
    ]
    assert render_question([DATABASE, DATABASE]).endswith(
        "_Reply in this thread to answer; your reply goes to the agent as the answer._"
    )
    assert render_question([DATABASE], closing="✅ done").endswith("• *SQLite*\n✅ done")


def test_a_plan_reads_as_a_checklist() -> None:
    """List items become boxes (nested ones indented), headings bold, a long plan is cut."""
    plan = "# Plan\n\n- [ ] one\n  * two\n3) three\nplain words"
    assert render_plan(plan).splitlines()[:6] == [
        "📋 *The agent's plan*",
        "*Plan*",
        "",
        "☐ one",
        "    ☐ two",
        "☐ three",
    ]
    long = render_plan("\n".join(f"- step {n}" for n in range(1000)))
    assert "…_the rest of the plan is in Coder._" in long
    assert len(long) < 3200


def test_only_a_successful_plan_proposal_names_its_file() -> None:
    assert plan_file({"ok": True, "kind": "plan", "file_id": "f-1"}) == "f-1"
    assert plan_file({"ok": True, "kind": "file", "file_id": "f-1"}) is None
    assert plan_file("plan file is empty") is None


def test_the_plan_option_takes_yes_or_no() -> None:
    requested, prompt = split_options("plan=true fix it")
    assert (requested.values, prompt) == ({"plan": ("true",)}, "fix it")
    with pytest.raises(OptionError, match="takes `true` or `false`"):
        split_options("plan=maybe fix it")
