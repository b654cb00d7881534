"""``bridge doctor``: check each setting, Slack and Coder, and say how to fix what fails.

Secrets are reported only as "set" or "not set"; nothing here prints their values.
"""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from slack_sdk.web.async_client import AsyncWebClient

from bridge.app import StartupError, ai_sdk_options, slack_identity
from bridge.coder.backend import connect_backend
from bridge.coder.errors import CoderError, CoderModelUnknown
from bridge.coder.types import Finding, ServerFacts
from bridge.config import ConfigError, Settings
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.migrate import alembic_config
from bridge.relay.limits import SlackLimits
from bridge.slack.scopes import REQUIRED_SCOPES
from bridge.tasks import TaskGroup


class Report:
    """Collects check results and prints them as they come."""

    def __init__(self) -> None:
        self.failures = 0

    def ok(self, text: str) -> None:
        print(f"  ✓ {text}")

    def fail(self, text: str, fix: str) -> None:
        self.failures += 1
        print(f"  ✗ {text}\n      fix: {fix}")


def _settings(settings: Settings, report: Report) -> None:
    print("Configuration")
    for name, value in (
        ("SLACK_BOT_TOKEN", settings.slack_bot_token),
        ("SLACK_SIGNING_SECRET", settings.slack_signing_secret),
        ("SLACK_APP_TOKEN", settings.slack_app_token),
        ("SLACK_CLIENT_ID", settings.slack_client_id),
        ("SLACK_CLIENT_SECRET", settings.slack_client_secret),
        ("CODER_SESSION_TOKEN", settings.coder_session_token),
    ):
        report.ok(f"{name}: {'set' if value is not None else 'not set'}")
    report.ok(f"SLACK_API_URL: {settings.slack_api_url}")
    report.ok(f"CODER_URL: {settings.coder_url or 'not set'}")
    report.ok(f"mode: {'Socket Mode' if settings.socket_mode else 'HTTP events at POST /slack/events'}")
    if settings.distribution:
        report.ok("Slack: installed into many workspaces through OAuth (GET /slack/install)")
    else:
        report.ok("Slack: one workspace, with SLACK_BOT_TOKEN")
    report.ok(f"BRIDGE_ENCRYPTION_KEY: {'set' if settings.encryption_key is not None else 'not set'}")
    _access(settings, report)
    try:
        settings.require_serve()
        report.ok("everything `bridge serve` requires is set")
    except ConfigError as exc:
        report.fail(str(exc), "set it in the environment or in .env (see docs/configuration.md#settings)")


def _access(settings: Settings, report: Report) -> None:
    """The identity mode and access policy in force, in words."""
    if settings.identity_mode == "linked":
        report.ok(
            "identity: linked (each person's chats run with the Coder token they link with /coder link)"
        )
    else:
        report.ok("identity: shared (every chat runs with CODER_SESSION_TOKEN)")
    channels = ", ".join(settings.allowed_channels) or "every channel the bot is in"
    users = ", ".join(settings.allowed_users) or "everyone"
    report.ok(f"chats may be started in: {channels}; by: {users}")
    report.ok(
        f"guests: {'allowed' if settings.allow_guests else 'refused'}; people from other organizations: "
        f"{'allowed' if settings.allow_external_users else 'refused'}"
    )
    control = "anyone allowed to start chats" if settings.control == "channel" else "the requester"
    admins = ", ".join(settings.admins) or "none"
    report.ok(f"chats are controlled by {control} and admins ({admins})")


async def _database(settings: Settings, report: Report) -> None:
    print("Database")
    db = Database(settings.database_url)
    try:
        async with db.engine.connect() as conn:
            current = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        if current == head:
            report.ok(f"reachable, schema at {head}")
        else:
            report.ok(f"reachable, schema at {current or 'empty'}; {head} pending (applied by serve/migrate)")
    except Exception as exc:
        report.fail(f"{db.engine.url.render_as_string()}: {type(exc).__name__}: {exc}", "check DATABASE_URL")
    finally:
        await db.dispose()


async def _installations(settings: Settings, report: Report) -> None:
    """How many workspaces the app is installed in (distribution mode has no token to check)."""
    db = Database(settings.database_url)
    try:
        async with db.unit() as session:
            installed = await repo.count_slack_bots(session)
    except Exception as exc:
        report.fail(
            f"installations unreadable: {type(exc).__name__}",
            "run `bridge migrate` (or start `bridge serve` once), then check DATABASE_URL",
        )
        return
    finally:
        await db.dispose()
    if installed:
        report.ok(f"installed in {installed} workspaces or orgs")
    else:
        report.ok("installed in no workspace yet: open /slack/install on the bridge's public URL")


async def _slack(settings: Settings, report: Report) -> None:
    print("Slack")
    if settings.distribution:
        await _installations(settings, report)
        return
    if settings.slack_bot_token is None:
        report.fail("no bot token, Slack not checked", "set SLACK_BOT_TOKEN to the app's xoxb- token")
        return
    client = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
    )
    try:
        identity = await slack_identity(client, SlackLimits())
    except StartupError as exc:
        report.fail(str(exc), "reinstall the app and copy its Bot User OAuth Token; check SLACK_API_URL")
        return
    finally:
        if client.session is not None:
            await client.session.close()
    report.ok(f"auth.test: bot user {identity.bot_user_id} in {identity.serves}")
    missing = sorted(set(REQUIRED_SCOPES) - identity.scopes)
    if missing:
        detail = "; ".join(f"{s} ({REQUIRED_SCOPES[s]})" for s in missing)
        report.fail(f"missing scopes: {detail}", "add them from manifest.yml and reinstall the app")
    else:
        report.ok("all required scopes granted")


_FOUND: dict[str, dict[Finding, str]] = {
    "promote": {
        "yes": "202, accepted (the message comes on the stream)",
        "no": "200 with the promoted message",
        "unknown": "unknown (only a promote shows it; both forms are handled)",
    },
    "labels": {
        "yes": "honoured",
        "no": "ignored (the bridge keeps only chats whose own labels match)",
        "unknown": "unknown (no chats to tell by)",
    },
    "errors": {
        "yes": "classified (each kind gets its own advice)",
        "no": "not classified (older build: Coder's message is shown as it is)",
        "unknown": "unknown (no failed chat to tell by)",
    },
    "providers": {
        "yes": "reported",
        "no": "not reported by this build",
        "unknown": "unknown (the model listing did not answer)",
    },
}


def _behaviours(facts: ServerFacts, report: Report) -> None:
    """The behaviours that differ between Coder builds, as read-only requests found them."""
    report.ok(f"server version: {facts.version or 'unknown'}")
    report.ok(f"MCP servers listed at: {facts.mcp_servers or 'nowhere (mcp= cannot be used)'}")
    report.ok(f"promote answer: {_FOUND['promote'][facts.promote_accepted]}")
    report.ok(f"label filters on the chat list: {_FOUND['labels'][facts.label_filters]}")
    report.ok(f"chat errors: {_FOUND['errors'][facts.classified_errors]}")
    availability = _FOUND["providers"][facts.provider_availability]
    if facts.unavailable_providers:
        availability += "; unavailable: " + ", ".join(facts.unavailable_providers)
    report.ok(f"model provider availability: {availability}")


async def _coder(settings: Settings, report: Report) -> None:
    print("Coder")
    if settings.coder_url is None or settings.coder_session_token is None:
        report.fail(
            "CODER_URL or CODER_SESSION_TOKEN not set", "set both (a token from `coder tokens create`)"
        )
        return
    token = settings.coder_session_token.get_secret_value()
    try:
        backend, reason = await connect_backend(
            settings.coder_url,
            token,
            api=settings.coder_api,
            organization_id=settings.coder_organization_id,
            ai_sdk=ai_sdk_options(settings),
            spawn=TaskGroup("doctor").spawn,
        )
    except CoderModelUnknown as exc:
        report.fail(
            f"BRIDGE_CODER_MODEL is invalid: {exc}", "set BRIDGE_CODER_MODEL to one of the valid models"
        )
        return
    except CoderError as exc:
        report.fail(str(exc), "check CODER_URL, the token, and that Coder Agents is enabled on the server")
        return
    try:
        user = await backend.whoami()
        report.ok(f"authenticated as {user.username}")
        report.ok(f"Chats API: {backend.generation} ({reason})")
        _behaviours(await backend.facts(), report)
        caps = backend.capabilities
        if caps.queue == "bridge":
            report.ok("follow-ups sent while the agent replies are queued by the bridge (Coder has no queue)")
        if caps.archive != "archive":
            report.ok(
                "archive reaction: "
                + (
                    "deletes the chat (BRIDGE_AISDK_ARCHIVE_DELETES)"
                    if caps.archive == "delete"
                    else "refused"
                )
            )
    except CoderError as exc:
        report.fail(str(exc), "create a new token with `coder tokens create` and set CODER_SESSION_TOKEN")
    finally:
        await backend.aclose()


async def run_doctor(settings: Settings) -> int:
    """Run every check; exit status 0 only when all passed."""
    report = Report()
    _settings(settings, report)
    await _database(settings, report)
    await _slack(settings, report)
    await _coder(settings, report)
    print("All checks passed." if not report.failures else f"{report.failures} problem(s) found.")
    return 0 if not report.failures else 1
