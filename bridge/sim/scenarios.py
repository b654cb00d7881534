"""Canned agent scripts shared by the demo, the tests and the benchmarks.

A script maps the latest user prompt to the steps the simulated agent plays (``coder_agent``). Pick
one for every turn with ``sim.agent = scenarios.echo``, or per prompt through ``sim.scripts``, which
maps a case-insensitive prompt prefix to a script; ``CANNED`` is its default, so a prompt starting
with ``/fail`` fails, one starting with ``/long`` gets a long answer and one starting with ``/ask``
waits for the user (G2). ``fix_login_bug`` is the
default agent and answers every other prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from bridge.sim.coder_agent import (
    Attach,
    ClientToolCall,
    Fail,
    Pause,
    Reasoning,
    Retry,
    Script,
    Step,
    Text,
    ToolCall,
)

_GREP_OUTPUT: Final = (
    "src/auth.py:12:def login(username: str, password: str) -> User | None:\n"
    "src/auth.py:15:    if user and user.password_hash == password:\n"
    "src/routes.py:40:    user = login(form.username, form.password)\n"
)

_FIX: Final = """\
def login(username: str, password: str) -> User | None:
    user = find_user(username)
    if user and verify_password(password, user.password_hash):
        return user
    return None"""


def fix_login_bug(prompt: str) -> list[Step]:
    """The demo turn: a short plan, a search, an edit, and a Markdown answer quoting the prompt."""
    return [
        Text("I'll start by finding where logins are checked."),
        ToolCall("execute", {"command": "grep -rn login src/"}, {"output": _GREP_OUTPUT, "exit_code": 0}),
        Text("`login()` compares the stored hash with the plain password. Fixing that now."),
        ToolCall(
            "edit_files",
            {
                "files": [
                    {
                        "path": "src/auth.py",
                        "edits": [
                            {
                                "search": "user.password_hash == password",
                                "replace": "verify_password(password, user.password_hash)",
                            }
                        ],
                    }
                ]
            },
            {"ok": True, "files_changed": 1},
        ),
        Text(_fix_summary(prompt)),
    ]


def _fix_summary(prompt: str) -> str:
    return (
        f"Done. You asked: “{prompt.strip()}”. The cause was that `login()` compared the **stored "
        "password hash** with the plain-text password, so every correct password was rejected.\n\n"
        "What changed:\n"
        "- `src/auth.py`: `login()` now calls `verify_password()` instead of `==`\n"
        "- the error message is unchanged, so callers see **no difference**\n"
        "- no database migration is needed\n\n"
        f"```python\n{_FIX}\n```\n\n"
        "Run `pytest tests/test_auth.py` to confirm the fix."
    )


_REPORT: Final = b"""tests/test_auth.py::test_login_accepts_the_right_password PASSED
tests/test_auth.py::test_login_rejects_a_wrong_password PASSED

2 passed in 0.04s
"""


def echo(prompt: str) -> list[Step]:
    """Answers with the prompt itself, so a test can tell which message a turn answered."""
    return [Text(f"Echo: {prompt}")]


def long_reply(prompt: str) -> list[Step]:
    """Reasoning, then about 6000 characters in many paragraphs: exercises message splitting."""
    paragraphs = [
        f"Part {number}. Here is what I found while working on “{prompt.strip()}”. "
        + "The change touches the request handler, the session store and the tests, and each of "
        "them needs a small, careful edit so that nothing else regresses. " * 4
        for number in range(1, 9)
    ]
    return [
        Reasoning("The user wants a thorough answer; I'll go area by area."),
        Text("\n\n".join(paragraphs)),
    ]


def failing(prompt: str) -> list[Step]:
    """Starts, retries once, then fails: the chat ends in ``error`` with ``last_error`` set."""
    return [
        Text("Looking into it."),
        Retry(attempt=1, delay_ms=200, error="Anthropic is overloaded"),
        Pause(0.2),
        Fail("Anthropic API error: overloaded (529)", kind="overloaded", retryable=True),
    ]


def retrying(prompt: str) -> list[Step]:
    """Two retried LLM calls, then a normal answer."""
    return [
        Retry(attempt=1, delay_ms=100, error="Anthropic is overloaded"),
        Pause(0.1),
        Retry(attempt=2, delay_ms=200, error="Anthropic is overloaded"),
        Pause(0.2),
        Text(f"Sorry for the wait. About “{prompt.strip()}”: it is done."),
    ]


def slow(prompt: str) -> list[Step]:
    """A turn of about six seconds with silent stretches, for progress displays and interrupts."""
    return [
        Text("This will take a moment."),
        Pause(2.0),
        ToolCall("execute", {"command": "make test"}, {"output": "42 passed\n", "exit_code": 0}, seconds=2.0),
        Pause(1.0),
        Text("All 42 tests pass."),
    ]


def slow_start(prompt: str) -> list[Step]:
    """Silent for five seconds before the demo turn, as a model slow to answer: the thread shows that
    the agent has the message but has said nothing yet."""
    return [Pause(5.0), *fix_login_bug(prompt)]


def stuck(prompt: str) -> list[Step]:
    """Streams one line and then runs for an hour: keeps a chat busy until it is interrupted."""
    return [Text("Working on it"), Pause(3600.0)]


ASK_ARGS: Final = {
    "questions": [
        {
            "header": "Database",
            "question": "Which database should the fix target?",
            "options": [
                {"label": "Postgres", "description": "The production database."},
                {"label": "SQLite", "description": "The local development database."},
            ],
        }
    ]
}
"""``ask_user_question``'s arguments as Coder's plan mode words them (chattool askuserquestion.go)."""


def asking(prompt: str) -> list[Step]:
    """Asks the user a question through a client tool, so a G2 chat waits in ``requires_action``; once
    the call is resolved (answered or cancelled) the agent wraps up the turn."""
    return [
        Text("Before I change anything, I need one answer from you."),
        ClientToolCall("ask_user_question", ASK_ARGS),
        Text("Thanks, I have what I need."),
    ]


TEST_ARGS: Final = {
    "questions": [
        {
            "header": "Regression test",
            "question": "Where should the regression test for the login fix go?",
            "options": [
                {"label": "Unit test", "description": "A fast test of login() in tests/test_auth.py."},
                {"label": "End-to-end test", "description": "A browser test of the login page."},
            ],
        }
    ]
}
"""The demo's question: where the regression test goes."""


def regression_test(prompt: str) -> list[Step]:
    """The demo's second turn: the agent asks its person where the test goes (a G2 client tool, so the
    chat waits in ``requires_action``), writes it, runs it and attaches the test report
    (``attach_file``), which the bridge posts into the thread."""
    return [
        Text("Sure. One question before I write it."),
        ClientToolCall("ask_user_question", TEST_ARGS),
        ToolCall(
            "write_file",
            {"path": "tests/test_auth.py", "content": "def test_login_checks_the_password_hash(): ..."},
            {"ok": True},
        ),
        ToolCall(
            "execute", {"command": "pytest tests/test_auth.py"}, {"output": _REPORT.decode(), "exit_code": 0}
        ),
        Attach("/home/coder/app/test-report.txt", _REPORT, "text/plain"),
        Text("Added the regression test where you chose; it fails without the fix and passes with it."),
    ]


CANNED: Final[Mapping[str, Script]] = {
    "/ask": asking,
    "/echo": echo,
    "/fail": failing,
    "/long": long_reply,
    "/retry": retrying,
    "/slow": slow,
    "/stuck": stuck,
}
