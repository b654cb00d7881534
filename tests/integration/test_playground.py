"""The playground in a real browser: headless Chromium (Debian's) driven by Playwright, against the
page served for the real bridge and the simulators, checking only what a person sees on it.

One conversation goes through every kind of act the page offers: a mention, a reply queued while
the agent works, an edit and a deletion of queued replies, a reaction, the Stop button, a reply with
an image, a pull request, what the access policy refuses another person, a guest and a partner
from another organization, and App Home. The last view of the thread is the README's screenshot.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.demo import simulation
from bridge.playground.command import GENERATION
from bridge.playground.server import Playground, listen

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="playwright is not installed (it comes with the dev extra)"
)
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
)

README_SCREENSHOT = Path(__file__).parents[2] / "docs" / "images" / "playground.png"
"""Where the README's screenshot is saved when ``BRIDGE_UPDATE_SCREENSHOT`` is set (otherwise the
test's own directory: a run must not change the checkout)."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A 2x2 PNG, what a person attaches from their disk.
IMAGE = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP4z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)
WAIT_MS = 15_000


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[playwright_api.Page]:
    """The playground page open in a fresh headless Chromium, the simulation behind it sped up."""
    async with simulation(speed=8, generation=GENERATION) as sim:
        playground = Playground(sim, listen(0))
        await playground.start()
        try:
            async with playwright_api.async_playwright() as driver:
                browser = await driver.chromium.launch_persistent_context(
                    str(tmp_path / "chromium-profile"),
                    executable_path=str(CHROMIUM),
                    args=CHROMIUM_ARGS,
                    headless=True,
                    viewport={"width": 1280, "height": 800},
                )
                try:
                    tab = browser.pages[0] if browser.pages else await browser.new_page()
                    tab.set_default_timeout(WAIT_MS)
                    tab.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
                    await tab.goto(playground.url)
                    yield tab
                finally:
                    await browser.close()
        finally:
            await playground.stop()


async def send(page: playwright_api.Page, composer: str, text: str) -> None:
    box = page.locator(f"{composer} textarea")
    await box.fill(text)
    await box.press("Enter")


def message(page: playwright_api.Page, text: str) -> playwright_api.Locator:
    """The thread's message showing ``text``."""
    return page.locator("#thread-messages .msg", has_text=text)


async def test_a_conversation_in_the_browser(page: playwright_api.Page, tmp_path: Path) -> None:
    expect = playwright_api.expect
    await page.locator("#agent").select_option("works until stopped")
    await send(page, "#composer", "@coder-agents run the tests")
    root = page.locator("#messages .msg", has_text="run the tests")
    await expect(root.locator(".mention")).to_have_text("@coder-agents")
    await root.locator(".replies-link").click()
    await expect(message(page, "Working on it")).to_be_visible()
    stop = page.locator("#thread-messages .block-button", has_text="Stop")
    await expect(stop).to_be_visible()

    await send(page, "#thread-composer", "and also lint")
    await expect(message(page, "Queued (#1)").locator(".block-button", has_text="Remove")).to_be_visible()
    queued = message(page, "and also lint")
    await expect(queued.locator(".reaction")).to_have_text("⏳ 1")
    await queued.hover()
    await queued.get_by_title("Edit message").click()
    await expect(page.locator("#thread-composer textarea")).to_have_value("and also lint")
    await send(page, "#thread-composer", "and also run the linter")
    edited = message(page, "and also run the linter")
    await expect(edited.locator(".edited")).to_be_visible()
    await expect(message(page, "Edit applied")).to_be_visible()

    await send(page, "#thread-composer", "oops, wrong thread")
    await expect(message(page, "Queued (#2)")).to_be_visible()
    mistake = message(page, "oops, wrong thread")
    await expect(mistake.locator(".reaction")).to_have_text("⏳ 1")
    await mistake.hover()
    await mistake.get_by_title("Delete message").click()
    await expect(mistake).to_have_count(0)
    await expect(message(page, "Removed from the queue")).to_be_visible()
    await expect(page.locator("#chat-list")).to_contain_text("running · 1 queued")

    working = message(page, "Working on it")
    await working.hover()
    await working.locator("[data-reaction='+1']").click()
    await expect(working.locator(".reaction.mine")).to_have_text("👍 1")

    await page.locator("#agent").select_option("answer")
    await stop.click()
    await expect(message(page, "You asked: “and also run the linter”")).to_be_visible()

    image = tmp_path / "login-error.png"
    image.write_bytes(IMAGE)
    await page.locator("#thread-composer input[type=file]").set_input_files(str(image))
    await expect(page.locator("#thread-composer .attachments")).to_contain_text("login-error.png")
    await send(page, "#thread-composer", "what does this screenshot show?")
    await expect(page.locator("#thread-messages img[alt='login-error.png']")).to_be_visible()
    await expect(message(page, "You asked: “what does this screenshot show?”")).to_be_visible()

    await page.locator("#pull-request").click()
    pull_request = "a[href='https://github.com/example/app/pull/1']"
    await expect(page.locator(f"#thread-messages {pull_request}")).to_have_text("run the tests")
    await expect(page.locator(f"#chat-list {pull_request}")).to_have_text("PR")

    await page.mouse.move(0, 0)
    screenshot = README_SCREENSHOT if os.environ.get("BRIDGE_UPDATE_SCREENSHOT") else tmp_path / "page.png"
    await page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 10_000, "the page was captured"

    await page.locator("#person").select_option("U0BOB")
    await page.locator("#thread-messages .block-button", has_text="Archive").click()
    refusal = page.locator("#thread-messages .ephemeral")
    await expect(refusal).to_contain_text("Only visible to you")
    await expect(refusal).to_contain_text("Only @alice, who started this chat, and the bridge's admins")
    for person, refused in [
        ("U0GUEST", "Guests of this workspace can't use Coder Agents here."),
        ("U0PARTNER", "People from other organizations can't use Coder Agents here."),
    ]:
        await page.locator("#person").select_option(person)
        await send(page, "#composer", "@coder-agents deploy it for me")
        await expect(page.locator(".ephemeral", has_text=refused)).to_be_visible()
    await expect(page.locator("#channel-list")).to_have_text("# acme-partners")
    await page.locator("#person").select_option("U0ALICE")
    await expect(refusal).to_have_count(0)
    await expect(page.locator("#chat-list li")).to_have_count(1)

    await page.locator("#app-home-link").click()
    await expect(page.locator("#home")).to_contain_text("Your Coder Agents chats")
    await expect(page.locator("#home")).to_contain_text("run the tests")
