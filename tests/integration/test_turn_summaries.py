"""End to end: Coder's summary of a finished turn in its completion line, and of the chat on App Home."""

from __future__ import annotations

from bridge.sim.coder_agent import Summary, Text
from tests.integration.conftest import World
from tests.integration.test_home import home_text


async def test_completion_line_and_home_show_coders_summaries(world: World) -> None:
    """The newest Coder summarizes a turn after it ended: the completion line is edited to say it
    (one message, still the one mention) and Home shows the chat's summary. Coder without summaries
    leaves the line as it was."""
    world.coder.agent = lambda prompt: [Text("Patched `auth.py`."), Summary("Fixed the login bug")]
    root = await world.mention("fix the login bug")
    await world.until_idle_and_shown(root)
    alice = f"<@{world.slack.alice}>"
    if not world.coder.dialect.late:
        await world.until(lambda: world.bot_texts(root)[-1] == f"{alice} ✅ The agent is done.")
        return
    done = f"{alice} ✅ The agent is done: Fixed the login bug"
    await world.until(lambda: world.bot_texts(root)[-1] == done)
    assert sum(t.startswith(alice) for t in world.bot_texts(root)) == 1, "edited, never posted twice"
    await world.slack.open_home(world.slack.alice)
    await world.until(lambda: "fix the login bug: Fixed the login bug" in home_text(world, world.slack.alice))
