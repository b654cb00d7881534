"""Slack's side of the OAuth install flow for the simulated app: the consent screen (which approves
at once), ``oauth.v2.access`` for both grants, and the tokens it issued, one bot per installed team.

Shapes follow the payloads kept in ``tests/fixtures/slack/oauth_v2_access*.json`` (bolt-python's mock
Web API server): a team install has ``team`` and ``bot_user_id``; an org-wide one has ``team`` null,
``enterprise`` set and ``is_enterprise_install`` true. With ``expires_in`` set (token rotation on) a
grant carries a ``refresh_token``; refreshing it answers a new pair and retires the old one, so a
refresh token is spent once (a second refresh with it is ``invalid_refresh_token``, as in Slack).
An install into a workspace the simulator hosts (``SlackSim.add_team``) other than the first gives the
app a bot user of its own there (``team_bot``): the workspace's events name it, and posts made with
its token are its. Deviations: the consent screen approves without a person; ``oauth.v2.access``
ignores ``redirect_uri`` (Slack requires it to match the authorize request's); a token of a team the
simulator does not host acts in the first workspace's channels.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

from bridge.sim.slack_state import APP_ID, BOT_ID, BOT_NAME, BOT_USER_ID, TEAM_ID, JsonDict, Workspace


def team_bot(team_id: str | None, enterprise_id: str | None = None) -> tuple[str, str]:
    """The bot user and bot id an install into ``team_id`` (None: org-wide) gives the app."""
    if team_id == TEAM_ID:
        return BOT_USER_ID, BOT_ID
    label = (team_id or enterprise_id or "X").upper()
    return f"U0BOT{label}", f"B0BOT{label}"


@dataclass(frozen=True)
class Grant:
    """A bot token the simulated Slack issued in an install or a refresh, and whom it acts for."""

    team_id: str | None
    team_name: str
    enterprise_id: str | None
    enterprise_name: str
    bot_user_id: str
    bot_id: str
    scopes: tuple[str, ...]
    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None
    """``time.time()`` after which the token answers ``token_expired``; None: it never expires."""

    @property
    def org_wide(self) -> bool:
        return self.team_id is None

    def auth_test(self, domain: str) -> JsonDict:
        """What ``auth.test`` answers for this token: its own team, or its org for an org-wide one."""
        return {
            "url": f"https://{domain}.slack.com/",
            "team": None if self.org_wide else self.team_name,
            "user": BOT_NAME,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "enterprise_id": self.enterprise_id,
            "is_enterprise_install": self.org_wide,
        }


@dataclass
class SlackOAuth:
    """The simulated app's credentials and the installs made with them.

    ``team`` and ``enterprise`` pick where the next consent installs (the authorize URL's ``team``
    parameter wins over ``team``); ``org_wide`` makes it an org-wide install of ``enterprise``.
    """

    client_id: str = "1111.2222"
    client_secret: str = "sim-client-secret"
    redirect_url: str | None = None
    """The app's Redirect URL (its settings' first), used when the authorize request names none."""
    team: str = TEAM_ID
    team_name: str = "Example"
    enterprise: tuple[str, str] | None = None
    """(id, name) of the org the next install is in; None: a workspace outside any org."""
    org_wide: bool = False
    expires_in: int | None = None
    """Seconds a token lasts (token rotation on); None: tokens never expire and no refresh token."""
    scopes: tuple[str, ...] = ()
    """The scopes granted; empty: the ones asked for."""
    grants: dict[str, Grant] = field(default_factory=dict)
    """Issued tokens by token, expired ones too (they answer ``token_expired``)."""
    revoked: set[str] = field(default_factory=set)
    """Tokens of removed installs (they answer ``token_revoked``)."""
    consents: list[JsonDict] = field(default_factory=list)
    """The authorize requests' query parameters, in order."""
    workspace: Workspace | None = None
    """The simulated workspaces: an install into one of them other than the first adds its bot."""
    _codes: dict[str, Grant] = field(default_factory=dict)
    _refreshes: dict[str, Grant] = field(default_factory=dict)
    _revoked: dict[str, Grant] = field(default_factory=dict)

    def consent(self, query: dict[str, str]) -> tuple[int, str]:
        """The consent screen approving at once: (302, where to) or (400, why not)."""
        self.consents.append(dict(query))
        if query.get("client_id") != self.client_id:
            return 400, "invalid_client_id"
        redirect_uri = query.get("redirect_uri") or self.redirect_url
        if not redirect_uri:
            return 400, "bad_redirect_uri"
        team = None if self.org_wide else query.get("team") or self.team
        asked = tuple(s for s in query.get("scope", "").split(",") if s)
        code = secrets.token_hex(8)
        self._codes[code] = self._grant(team, self.scopes or asked)
        separator = "&" if "?" in redirect_uri else "?"
        return 302, f"{redirect_uri}{separator}{urlencode({'code': code, 'state': query.get('state', '')})}"

    def access(self, params: JsonDict, authorization: str) -> JsonDict:
        """``oauth.v2.access``: a code for its install, or a refresh token for a new pair."""
        client_id, client_secret = _credentials(params, authorization)
        if client_id != self.client_id:
            return {"ok": False, "error": "invalid_client_id"}
        if client_secret != self.client_secret:
            return {"ok": False, "error": "bad_client_secret"}
        if params.get("grant_type") == "refresh_token":
            old = self._refreshes.pop(str(params.get("refresh_token") or ""), None)
            if old is None:
                return {"ok": False, "error": "invalid_refresh_token"}
            grant = self._issue(replace(old, access_token="", refresh_token=None, expires_at=None))
            return {**self._answer(grant), "token_type": "bot"}
        pending = self._codes.pop(str(params.get("code") or ""), None)
        if pending is None:
            return {"ok": False, "error": "invalid_code"}
        hosted = self.workspace.teams if self.workspace is not None else {}
        if self.workspace is not None and pending.team_id in hosted and pending.team_id != TEAM_ID:
            self.workspace.add_bot(str(pending.team_id), pending.bot_user_id, pending.bot_id)
        return {**self._answer(self._issue(pending)), "token_type": "bot"}

    def issued(self, token: str) -> Grant | None:
        """The grant of a token this flow issued, whether it still works or not."""
        grant = self.grants.get(token)
        if grant is not None or token not in self.revoked:
            return grant
        return self._revoked.get(token)

    def check(self, token: str) -> Grant | str:
        """The grant of a token this flow issued, or the error Slack answers for it."""
        grant = self.grants.get(token)
        if grant is None:
            return "token_revoked" if token in self.revoked else "invalid_auth"
        if grant.expires_at is not None and time.time() >= grant.expires_at:
            return "token_expired"
        return grant

    def uninstall(self, team_id: str | None, enterprise_id: str | None = None) -> int:
        """Revoke every token of an install (the app was removed); how many."""
        gone = [t for t, g in self.grants.items() if (g.team_id, g.enterprise_id) == (team_id, enterprise_id)]
        for token in gone:
            grant = self.grants.pop(token)
            self.revoked.add(token)
            self._revoked[token] = grant
            if grant.refresh_token is not None:
                self._refreshes.pop(grant.refresh_token, None)
        return len(gone)

    def _grant(self, team: str | None, scopes: tuple[str, ...]) -> Grant:
        enterprise_id, enterprise_name = self.enterprise or (None, "")
        own = team == TEAM_ID
        bot_user_id, bot_id = team_bot(team, enterprise_id)
        return Grant(
            team_id=team,
            team_name=self.team_name if own else f"Team {team}",
            enterprise_id=enterprise_id,
            enterprise_name=enterprise_name,
            bot_user_id=bot_user_id,
            bot_id=bot_id,
            scopes=scopes,
            access_token="",
        )

    def _issue(self, grant: Grant) -> Grant:
        label = grant.team_id or grant.enterprise_id or "X"
        issued = replace(grant, access_token=f"xoxb-{label}-{secrets.token_hex(12)}")
        if self.expires_in is not None:
            issued = replace(
                issued,
                refresh_token=f"xoxe-1-{secrets.token_hex(16)}",
                expires_at=time.time() + self.expires_in,
            )
            assert issued.refresh_token is not None
            self._refreshes[issued.refresh_token] = issued
        self.grants[issued.access_token] = issued
        return issued

    def _answer(self, grant: Grant) -> JsonDict:
        enterprise = (
            {"id": grant.enterprise_id, "name": grant.enterprise_name} if grant.enterprise_id else None
        )
        answer: JsonDict = {
            "ok": True,
            "app_id": APP_ID,
            "authed_user": {"id": "U0INSTALLER"},
            "scope": ",".join(grant.scopes),
            "access_token": grant.access_token,
            "bot_user_id": grant.bot_user_id,
            "team": None if grant.org_wide else {"id": grant.team_id, "name": grant.team_name},
            "enterprise": enterprise,
            "is_enterprise_install": grant.org_wide,
        }
        if grant.refresh_token is not None and self.expires_in is not None:
            answer.update(refresh_token=grant.refresh_token, expires_in=self.expires_in)
        return answer


def _credentials(params: JsonDict, authorization: str) -> tuple[str, str]:
    """The client id and secret, from HTTP Basic auth (what slack-sdk sends) or the form."""
    if authorization.startswith("Basic "):
        try:
            decoded = base64.b64decode(authorization.removeprefix("Basic ").strip()).decode()
        except ValueError:
            return "", ""
        client_id, _, client_secret = decoded.partition(":")
        return client_id, client_secret
    return str(params.get("client_id") or ""), str(params.get("client_secret") or "")
