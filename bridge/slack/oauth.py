"""Installing the app into workspaces through Slack's OAuth flow, and forgetting an installation
when a workspace removes the app.

``/slack/install`` sends the browser straight to Slack's consent screen (no install page of
Bolt's); ``/slack/oauth_redirect`` takes it back, Bolt's flow checks the state (single use, the same
browser) and exchanges the code, and the pages shown after say in plain words what happened.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin

from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.async_callback_options import AsyncCallbackOptions, AsyncFailureArgs, AsyncSuccessArgs
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.response import BoltResponse
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient

from bridge.relay.installations import workspace_name

log = logging.getLogger(__name__)

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"

_FAILURES = {
    "access_denied": "The installation was cancelled in Slack, so nothing was installed.",
    "invalid_state": "This installation link has expired or was already used.",
    "invalid_browser": (
        "This installation was started in another browser, or this browser blocks cookies for this site."
    ),
    "missing_code": "Slack did not send back an installation code.",
    "invalid_code": "Slack did not confirm the installation: its code was invalid or had expired.",
    "storage_error": "Slack approved the installation, but the bridge could not store it.",
}
_START_AGAIN = f'<a href="{INSTALL_PATH}">Start the installation again</a>.'


def authorization_url(api_url: str) -> str:
    """Slack's consent screen, beside its Web API (``https://slack.com/oauth/v2/authorize`` for
    ``https://slack.com/api/``), so ``SLACK_API_URL`` pointing at a simulator takes the flow there too."""
    return urljoin(api_url, "../oauth/v2/authorize")


def _page(status: int, title: str, text: str, headers: dict[str, Any]) -> BoltResponse:
    body = (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{text}</p></body></html>"
    )
    return BoltResponse(
        status=status, body=body, headers={"Content-Type": "text/html; charset=utf-8", **headers}
    )


async def _succeeded(args: AsyncSuccessArgs) -> BoltResponse:
    installation = args.installation
    where = installation.team_name or installation.enterprise_name or "the workspace"
    log.info("installed into workspace %s", workspace_name(installation.enterprise_id, installation.team_id))
    return _page(
        200,
        "Installed",
        f"The bridge is installed in {html.escape(where)}. Invite it to a channel and mention it to "
        "start a chat. You can close this page.",
        {"Set-Cookie": [args.settings.state_utils.build_set_cookie_for_deletion()]},
    )


async def _failed(args: AsyncFailureArgs) -> BoltResponse:
    reason = _FAILURES.get(args.reason, "The installation did not complete.")
    log.warning("an installation did not complete: %s", args.reason)
    return _page(
        args.suggested_status_code,
        "Not installed",
        f"{html.escape(reason)} {_START_AGAIN}",
        {"Set-Cookie": [args.settings.state_utils.build_set_cookie_for_deletion()]},
    )


def oauth_flow(
    *,
    client: AsyncWebClient,
    client_id: str,
    client_secret: str,
    scopes: Sequence[str],
    redirect_uri: str | None,
    installations: AsyncInstallationStore,
    states: AsyncOAuthStateStore,
    state_expiration_seconds: int,
) -> AsyncOAuthFlow:
    """Bolt's OAuth flow over the bridge's stores, asking for the bot scopes ``scopes``."""
    return AsyncOAuthFlow(
        client=client,
        logger=log,
        settings=AsyncOAuthSettings(
            client_id=client_id,
            client_secret=client_secret,
            scopes=list(scopes),
            user_scopes=[],
            redirect_uri=redirect_uri,
            install_path=INSTALL_PATH,
            install_page_rendering_enabled=False,
            redirect_uri_path=REDIRECT_PATH,
            callback_options=AsyncCallbackOptions(success=_succeeded, failure=_failed),
            authorization_url=authorization_url(str(client.base_url)),
            installation_store=installations,
            installation_store_bot_only=True,
            state_store=states,
            state_expiration_seconds=state_expiration_seconds,
            logger=log,
        ),
    )


def register_uninstalls(app: AsyncApp, installations: AsyncInstallationStore) -> None:
    """Forget an installation when its workspace removes the app (``app_uninstalled``) or Slack
    revokes its tokens (``tokens_revoked``): nothing keeps a token Slack no longer honours."""

    async def uninstalled(body: dict[str, Any]) -> None:
        enterprise_id, team_id = _workspace(body)
        await installations.async_delete_all(enterprise_id=enterprise_id, team_id=team_id)
        log.info(
            "the app was removed from workspace %s/%s: its installation is deleted",
            enterprise_id or "-",
            team_id or "-",
        )

    async def revoked(body: dict[str, Any], event: dict[str, Any]) -> None:
        enterprise_id, team_id = _workspace(body)
        tokens = event.get("tokens") or {}
        if tokens.get("bot"):
            await installations.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)
            log.info(
                "Slack revoked the bot token of workspace %s/%s: it is deleted",
                enterprise_id or "-",
                team_id or "-",
            )
        for user_id in tokens.get("oauth") or ():
            await installations.async_delete_installation(
                enterprise_id=enterprise_id, team_id=team_id, user_id=user_id
            )
        if tokens.get("oauth"):
            log.info(
                "Slack revoked %d user tokens in workspace %s/%s: deleted",
                len(tokens["oauth"]),
                enterprise_id or "-",
                team_id or "-",
            )

    app.event("app_uninstalled")(uninstalled)
    app.event("tokens_revoked")(revoked)


def _workspace(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """The installation an event is about: an org-wide one has no team, whichever team it came from."""
    authorizations = body.get("authorizations") or [{}]
    org_wide = bool(body.get("is_enterprise_install") or authorizations[0].get("is_enterprise_install"))
    return body.get("enterprise_id") or None, None if org_wide else body.get("team_id") or None
