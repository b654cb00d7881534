"""The `bridge` command as an operator runs it: config errors, serve + SIGTERM, doctor, the demo."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys
from asyncio.subprocess import PIPE
from pathlib import Path

import aiohttp
import pytest
from cryptography.fernet import Fernet

from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.migrate import upgrade
from bridge.playground.command import run_playground
from bridge.relay.cipher import Opened, TokenCipher
from bridge.relay.identity import token_binding
from bridge.relay.installations import Installations, InstalledApp
from bridge.sim.coder import CoderSim
from bridge.sim.slack import SlackSim
from tests.integration.conftest import CODER_TOKEN, SIGNING_SECRET
from tests.integration.processes import BridgeProcess, clean_env, free_port, serve_env


async def _run(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", *args, env=env, cwd=cwd, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "SLACK_BOT_TOKEN is not set"),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "CODER_SESSION_TOKEN": "t0k3n-value"}, "CODER_URL is not set"),
        ({"PORT": "eighty"}, "PORT is invalid"),
        ({"SLACK_BOT_TOKEN": "changeme"}, "SLACK_BOT_TOKEN is a placeholder"),
        (
            {
                "SLACK_BOT_TOKEN": "xoxb-1",
                "SLACK_SIGNING_SECRET": "s3cret-value",
                "CODER_URL": "https://coder.example.com",
                "CODER_SESSION_TOKEN": "t0k3n-value",
                "BRIDGE_IDENTITY_MODE": "linked",
            },
            "BRIDGE_ENCRYPTION_KEY is not set",
        ),
        ({"BRIDGE_ENCRYPTION_KEY": "not-a-fernet-key"}, "BRIDGE_ENCRYPTION_KEY is invalid"),
        (
            {
                "SLACK_BOT_TOKEN": "xoxb-1",
                "SLACK_CLIENT_ID": "1111.2222",
                "SLACK_CLIENT_SECRET": "s3cret-value",
            },
            "is ambiguous",
        ),
    ],
)
async def test_serve_refuses_bad_configuration(tmp_path: Path, values: dict[str, str], expected: str) -> None:
    """A missing or malformed setting stops `bridge serve` with one line naming it, exit status 2."""
    code, out, err = await _run("serve", env=clean_env(**values), cwd=tmp_path)
    assert code == 2
    assert err.strip().count("\n") == 0
    assert expected in err
    for value in values.values():
        if value not in ("eighty", "linked", "https://coder.example.com"):
            assert value not in err + out


async def test_serve_reports_unreachable_coder(tmp_path: Path, sims: tuple[SlackSim, CoderSim]) -> None:
    """A Coder that cannot be reached at start stops `serve` with one line saying so, exit status 1."""
    slack, coder = sims
    env = serve_env(
        slack, coder, tmp_path, PORT=str(free_port()), CODER_URL=f"http://127.0.0.1:{free_port()}"
    )
    code, _, err = await _run("serve", env=env, cwd=tmp_path)
    assert code == 1
    assert "cannot start" in err
    assert "Could not reach Coder" in err


async def test_serve_reports_a_taken_port(tmp_path: Path, sims: tuple[SlackSim, CoderSim]) -> None:
    """A PORT another process listens on stops `serve` with one line naming it, exit status 1."""
    slack, coder = sims
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, _, err = await _run("serve", env=serve_env(slack, coder, tmp_path, PORT=port), cwd=tmp_path)
    assert code == 1
    assert f"bridge: cannot start: cannot listen on 127.0.0.1:{port}: " in err
    assert "Traceback" not in err


async def test_serve_relays_then_stops_cleanly_on_sigterm(
    tmp_path: Path, sims: tuple[SlackSim, CoderSim]
) -> None:
    """`bridge serve` relays a mention end to end, and SIGTERM ends it with exit status 0."""
    slack, coder = sims
    bridge = await BridgeProcess.start(serve_env(slack, coder, tmp_path), tmp_path)
    slack.event_url = bridge.events_url
    try:
        root = await slack.user_says(slack.alice, slack.general, f"<@{slack.bot_user_id}> fix the login bug")
        await slack.wait_for(
            lambda: any("Run `pytest" in m.visible_text for m in slack.thread(slack.general, root)),
            timeout=20,
        )
    finally:
        code, log = await bridge.stop()
    assert code == 0, log
    assert "bridge stopped" in log


async def test_doctor_checks_everything_against_simulators(
    tmp_path: Path, sims: tuple[SlackSim, CoderSim]
) -> None:
    """`bridge doctor` reports Slack identity, scopes, Coder user, API generation, identity mode and
    access policy; the encryption key only as "set", no secret shown."""
    slack, coder = sims
    key = Fernet.generate_key().decode()
    env = serve_env(
        slack,
        coder,
        tmp_path,
        BRIDGE_IDENTITY_MODE="linked",
        BRIDGE_ENCRYPTION_KEY=key,
        BRIDGE_ADMINS="U0BOB",
    )
    code, out, err = await _run("doctor", env=env, cwd=tmp_path)
    assert code == 0, out + err
    assert "auth.test: bot user U0BOT" in out
    assert "all required scopes granted" in out
    assert "authenticated as alice" in out
    assert "Chats API: experimental" in out
    assert "BRIDGE_ENCRYPTION_KEY: set" in out
    assert "identity: linked" in out
    assert "guests: refused; people from other organizations: refused" in out
    assert "admins (U0BOB)" in out
    for secret in (slack.bot_token, CODER_TOKEN, SIGNING_SECRET, key):
        assert secret not in out + err


async def test_doctor_says_the_mode_and_counts_the_installations_in_distribution_mode(
    tmp_path: Path, sims: tuple[SlackSim, CoderSim]
) -> None:
    """Installed through OAuth, `bridge doctor` says so and how many workspaces it serves; no token."""
    slack, coder = sims
    key = Fernet.generate_key().decode()
    env = serve_env(
        slack,
        coder,
        tmp_path,
        SLACK_CLIENT_ID=slack.oauth.client_id,
        SLACK_CLIENT_SECRET=slack.oauth.client_secret,
        BRIDGE_ENCRYPTION_KEY=key,
    )
    del env["SLACK_BOT_TOKEN"]
    db = Database(env["DATABASE_URL"])
    await upgrade(db)
    await Installations(db, TokenCipher([key])).save(
        InstalledApp(
            enterprise_id=None, team_id="T0001", bot_token="xoxb-installed-secret", bot_user_id="U0BOT"
        )
    )
    await db.dispose()

    code, out, err = await _run("doctor", env=env, cwd=tmp_path)

    assert code == 0, out + err
    assert "Slack: installed into many workspaces through OAuth" in out
    assert "installed in 1 workspaces or orgs" in out
    for secret in ("xoxb-installed-secret", slack.oauth.client_secret, key):
        assert secret not in out + err


async def test_doctor_reports_the_server_version_and_its_behaviours(tmp_path: Path) -> None:
    """`bridge doctor` against the newest Coder prints its version and what read-only requests found:
    the MCP listing's path, label filters, unavailable providers; the promote form stays unknown."""
    async with (
        CoderSim(tokens={CODER_TOKEN: "alice"}, generation="v2-late") as coder,
        SlackSim(signing_secret=SIGNING_SECRET, time_scale=0.05) as slack,
    ):
        code, out, err = await _run("doctor", env=serve_env(slack, coder, tmp_path), cwd=tmp_path)
        asked = {r.method for r in coder.requests}
    assert code == 0, out + err
    assert "server version: v2.41.0-sim" in out
    assert f"MCP servers listed at: /api/v2/organizations/{coder.organization_id}/mcp-servers" in out
    assert "promote answer: unknown (only a promote shows it; both forms are handled)" in out
    assert "label filters on the chat list: unknown (no chats to tell by)" in out
    assert "model provider availability: reported; unavailable: Google (missing_api_key)" in out
    assert asked == {"GET"}, "the doctor changes nothing on the server"


async def test_doctor_says_how_to_fix_a_bad_token(tmp_path: Path, sims: tuple[SlackSim, CoderSim]) -> None:
    """A rejected Coder token fails the doctor with a fix, exit status 1."""
    slack, coder = sims
    env = serve_env(slack, coder, tmp_path, CODER_SESSION_TOKEN="wrong-token-123")
    code, out, _ = await _run("doctor", env=env, cwd=tmp_path)
    assert code == 1
    assert "fix:" in out
    assert "wrong-token-123" not in out


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ", re.MULTILINE)
"""A line of the bridge's text log format."""


async def test_bare_bridge_without_credentials_plays_the_demo(tmp_path: Path) -> None:
    """The Quick start command: `bridge` with no credentials runs the demo to the end, exit status 0,
    printing the thread and nothing of the bridge's log, which goes to the file it names; its
    simulated Slack app is installed as manifest.yml asks, so that log holds no warning."""
    code, out, err = await _run(env=clean_env(), cwd=tmp_path, timeout=120)
    assert code == 0, err
    assert "playing the built-in demo" in out
    assert "alice: <@U0BOT> fix the login bug" in out
    assert "Run `pytest tests/test_auth.py` to confirm the fix." in out
    assert "[file test-report.txt]" in out, "the file the agent attached, posted back"
    assert "Demo finished" in out
    assert not LOG_LINE.search(out + err)
    named = re.search(r"The bridge's log is in (\S+)", out)
    assert named is not None
    log = await asyncio.to_thread(Path(named.group(1)).read_text)
    assert "Running upgrade" in log
    assert " WARNING " not in log


@pytest.mark.parametrize("command", ["serve", "doctor"])
async def test_ai_sdk_model_is_checked_and_shown(tmp_path: Path, command: str) -> None:
    """Against the 2025 AI-SDK API an unknown BRIDGE_CODER_MODEL stops `serve` with one line naming it
    and the valid models; `doctor` says the same, and shows the model and what the bridge does instead."""
    async with (
        CoderSim(tokens={CODER_TOKEN: "alice"}, generation="ai-sdk") as coder,
        SlackSim(signing_secret=SIGNING_SECRET, time_scale=0.05) as slack,
    ):
        env = serve_env(slack, coder, tmp_path, PORT=str(free_port()), BRIDGE_CODER_MODEL="gpt-nope")
        code, out, err = await _run(command, env=env, cwd=tmp_path)
        assert code == 1
        refused = "BRIDGE_CODER_MODEL is invalid: Model 'gpt-nope' is not one Coder at"
        assert refused in (err if command == "serve" else out)
        assert "valid: claude-3-7-sonnet-latest" in err + out
        if command == "doctor":
            code, out, err = await _run(command, env={**env, "BRIDGE_CODER_MODEL": ""}, cwd=tmp_path)
            assert code == 0, out + err
            assert "Chats API: v2-legacy" in out
            assert "model claude-3-7-sonnet-latest" in out
            assert "queued by the bridge" in out


async def test_rotate_keys_reencrypts_every_stored_token_with_the_newest_key(tmp_path: Path) -> None:
    """`bridge rotate-keys` stores every linked token again under the newest key (also one stored by an
    earlier version), refuses one sealed for another person, reports counts and never a token."""
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path}/bridge.db"
    secrets = {"U0BOB": "tok-bob-0123456789", "U0CAROL": "tok-carol-0123456789", "U0EVE": "tok-admin-0123"}
    stored = {
        "U0BOB": TokenCipher([old]).seal(secrets["U0BOB"], token_binding("T1", "U0BOB")),
        "U0CAROL": Fernet(old).encrypt(secrets["U0CAROL"].encode()).decode(),
        "U0EVE": TokenCipher([old]).seal(secrets["U0EVE"], token_binding("T1", "U0ADMIN")),
    }
    db = Database(url)
    try:
        await upgrade(db)
        async with db.unit() as session:
            for user, ciphertext in stored.items():
                await repo.save_user_link(
                    session,
                    team_id="T1",
                    slack_user_id=user,
                    coder_user_id=f"id-{user}",
                    coder_username=user.lower(),
                    token_ciphertext=ciphertext,
                )
        code, out, err = await _run("rotate-keys", env=clean_env(DATABASE_URL=url), cwd=tmp_path)
        assert code == 2
        assert "BRIDGE_ENCRYPTION_KEY is not set" in err
        env = clean_env(DATABASE_URL=url, BRIDGE_ENCRYPTION_KEY=f"{new},{old}")
        code, out, err = await _run("rotate-keys", env=env, cwd=tmp_path)
        assert code == 0, err
        assert "2 re-encrypted with the newest key, 0 already current, 1 refused" in out
        assert "0 unreadable" in out
        for value in (*secrets.values(), old, new):
            assert value not in out + err
        async with db.unit() as session:
            links = {link.slack_user_id: link for link in await repo.find_all_user_links(session)}
        for user in ("U0BOB", "U0CAROL"):
            opened = TokenCipher([new]).unseal(links[user].token_ciphertext, token_binding("T1", user))
            assert opened == Opened(secrets[user])
        assert links["U0EVE"].broken
        code, out, err = await _run("rotate-keys", env=env, cwd=tmp_path)
        assert "0 re-encrypted with the newest key, 2 already current" in out
    finally:
        await db.dispose()


async def test_rotate_keys_reencrypts_the_slack_installations_tokens(tmp_path: Path) -> None:
    """Installed through OAuth, `bridge rotate-keys` also stores every Slack token of the
    installations again under the newest key, and says how many, never a token."""
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path}/bridge.db"
    db = Database(url)
    try:
        await upgrade(db)
        installed = InstalledApp(
            enterprise_id=None, team_id="T1", bot_token="xoxb-T1-secret", bot_refresh_token="xoxe-1-T1-secret"
        )
        await Installations(db, TokenCipher([old])).save(installed)
        env = clean_env(DATABASE_URL=url, BRIDGE_ENCRYPTION_KEY=f"{new},{old}")
        code, out, err = await _run("rotate-keys", env=env, cwd=tmp_path)
        assert code == 0, err
        assert "Slack installations' tokens: 2 re-encrypted with the newest key, 0 already current" in out
        assert "it can be removed from BRIDGE_ENCRYPTION_KEY" in out
        assert "secret" not in out + err
        bot = await Installations(db, TokenCipher([new])).find_bot(None, "T1")
        assert bot is not None
        assert (bot.bot_token, bot.bot_refresh_token) == ("xoxb-T1-secret", "xoxe-1-T1-secret")
    finally:
        await db.dispose()


async def test_demo_on_the_web_plays_for_the_first_visitor(tmp_path: Path) -> None:
    """`bridge demo --web` prints the playground's address; once a page connects, the demo's
    conversation plays and the page is shown it as it unfolds; SIGINT ends it with exit status 0."""
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bridge", "demo", "--web", "--port", "0", "--speed", "8"),
        env=clean_env(),
        cwd=tmp_path,
        stdout=PIPE,
        stderr=PIPE,
    )
    assert proc.stdout is not None
    try:
        url = ""
        while not url:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert line, "the playground ended before printing its address"
            url = line.split()[1] if line.startswith("Playground: ") else ""
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as page:
                assert page.content_type == "text/html"
                assert "/static/playground.js" in await page.text()
            async with http.ws_connect(f"{url}api/live?user=U0ALICE") as live:
                texts: list[str] = []
                while not any("Added the regression test where you chose" in t for t in texts):
                    view = await asyncio.wait_for(live.receive_json(), 30)
                    texts = [m["text"] for m in view["messages"]["C0GENERAL"]]
        assert "<@U0BOT> fix the login bug" in texts
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert not LOG_LINE.search(err.decode())


async def test_playground_reports_a_taken_port(capsys: pytest.CaptureFixture[str]) -> None:
    """A port another process listens on stops `bridge playground` at once, with one line naming it."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert await run_playground(port=port, speed=1.0) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"bridge: cannot serve the playground on 127.0.0.1:{port}: ")
    assert err.count("\n") == 1
