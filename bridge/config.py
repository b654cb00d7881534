"""Settings, read from the environment (or a ``.env`` file) exactly as ``interface.md`` names them.

``load_settings`` is called by the CLI; nothing reads the environment at import time, so tests and
the demo build ``Settings`` objects directly. Secrets are ``SecretStr`` so they never show up in a
repr, a log line or a validation error.
"""

from __future__ import annotations

from typing import Annotated, Literal

from cryptography.fernet import Fernet
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_PLACEHOLDERS = {"changeme", "change-me", "changethis", "xoxb-...", "xapp-...", "secret", "todo", ""}


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it and never contains a secret."""


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


IdList = Annotated[tuple[str, ...], NoDecode]
"""Slack ids from a comma-separated variable (``C123,C456``); empty means "no restriction"."""


def encryption_keys(secret: SecretStr) -> list[str]:
    """The Fernet keys of ``BRIDGE_ENCRYPTION_KEY``, newest first (comma-separated for rotation)."""
    return [key.strip() for key in secret.get_secret_value().split(",") if key.strip()]


class Settings(BaseSettings):
    """Every knob of the bridge. Unprefixed names follow ``interface.md``; the rest are ``BRIDGE_*``."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    slack_bot_token: SecretStr | None = Field(default=None, validation_alias=_env("SLACK_BOT_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias=_env("SLACK_SIGNING_SECRET")
    )
    slack_app_token: SecretStr | None = Field(default=None, validation_alias=_env("SLACK_APP_TOKEN"))
    slack_api_url: str = Field(default="https://slack.com/api/", validation_alias=_env("SLACK_API_URL"))
    slack_client_id: str | None = Field(default=None, validation_alias=_env("SLACK_CLIENT_ID"))
    slack_client_secret: SecretStr | None = Field(default=None, validation_alias=_env("SLACK_CLIENT_SECRET"))
    slack_redirect_uri: str | None = Field(default=None, validation_alias=_env("BRIDGE_SLACK_REDIRECT_URI"))
    """The public URL of ``/slack/oauth_redirect``, as listed in the app's redirect URLs; unset, Slack
    uses the app's only one."""
    slack_scopes: IdList = Field(default=(), validation_alias=_env("BRIDGE_SLACK_SCOPES"))
    """The bot scopes an installation asks for; empty: the ones ``manifest.yml`` asks for."""
    coder_url: str | None = Field(default=None, validation_alias=_env("CODER_URL"))
    coder_session_token: SecretStr | None = Field(default=None, validation_alias=_env("CODER_SESSION_TOKEN"))
    coder_organization_id: str | None = Field(default=None, validation_alias=_env("CODER_ORGANIZATION_ID"))
    database_url: str = Field(default="sqlite:///bridge.db", validation_alias=_env("DATABASE_URL"))
    host: str = Field(default="0.0.0.0", validation_alias=_env("HOST"))
    port: int = Field(default=3000, ge=0, le=65535, validation_alias=_env("PORT"))
    metrics_host: str = Field(default="127.0.0.1", validation_alias=_env("BRIDGE_METRICS_HOST"))
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, validation_alias=_env("BRIDGE_METRICS_PORT")
    )
    """Where ``/metrics`` is served on its own; unset: on the main listener, beside the Slack endpoint."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias=_env("LOG_LEVEL")
    )
    log_format: Literal["text", "json"] = Field(default="text", validation_alias=_env("LOG_FORMAT"))
    otel_enabled: bool = Field(default=False, validation_alias=_env("BRIDGE_OTEL_ENABLED"))
    """Export OpenTelemetry traces over OTLP/HTTP, where the standard ``OTEL_EXPORTER_OTLP_*``
    variables say (read by the exporter itself)."""

    reaction_interrupt: str = Field(
        default="octagonal_sign", validation_alias=_env("BRIDGE_REACTION_INTERRUPT")
    )
    reaction_archive: str = Field(default="file_cabinet", validation_alias=_env("BRIDGE_REACTION_ARCHIVE"))
    reaction_promote: str = Field(default="arrow_double_up", validation_alias=_env("BRIDGE_REACTION_PROMOTE"))
    reaction_working: str = Field(default="eyes", validation_alias=_env("BRIDGE_REACTION_WORKING"))
    reaction_done: str = Field(default="white_check_mark", validation_alias=_env("BRIDGE_REACTION_DONE"))
    reaction_failed: str = Field(default="x", validation_alias=_env("BRIDGE_REACTION_FAILED"))
    reaction_queued: str = Field(
        default="hourglass_flowing_sand", validation_alias=_env("BRIDGE_REACTION_QUEUED")
    )
    coder_api: Literal["auto", "experimental", "v2", "v2-legacy"] = Field(
        default="auto", validation_alias=_env("BRIDGE_CODER_API")
    )
    coder_model: str | None = Field(default=None, validation_alias=_env("BRIDGE_CODER_MODEL"))
    aisdk_archive_deletes: bool = Field(
        default=False,
        validation_alias=AliasChoices(
            *_env("BRIDGE_AISDK_ARCHIVE_DELETES").choices, *_env("BRIDGE_LEGACY_ARCHIVE_DELETES").choices
        ),
    )
    """The 2025 AI-SDK API cannot archive: archiving deletes the chat. ``BRIDGE_LEGACY_ARCHIVE_DELETES``,
    its first name, is still read."""
    edit_interval: float = Field(default=1.0, ge=0, le=60, validation_alias=_env("BRIDGE_EDIT_INTERVAL"))
    native_streaming: bool = Field(default=False, validation_alias=_env("BRIDGE_NATIVE_STREAMING"))
    agent_sessions: Literal["auto", "off"] = Field(
        default="auto", validation_alias=_env("BRIDGE_AGENT_SESSIONS")
    )
    slack_rate_scale: float = Field(
        default=1.0, gt=0, le=1_000_000, validation_alias=_env("BRIDGE_SLACK_RATE_SCALE")
    )
    slack_post_rate_max: float = Field(
        default=3000.0, ge=60, le=1_000_000, validation_alias=_env("BRIDGE_SLACK_POST_RATE_MAX")
    )
    """New messages a minute (workspace-wide) the learned pace grows to at most; 300, the guard it
    starts from, keeps it fixed."""
    replica_heartbeat: float = Field(
        default=5.0, gt=0, le=60, validation_alias=_env("BRIDGE_REPLICA_HEARTBEAT")
    )
    """Seconds between a replica's heartbeats, which also sync the shared Slack budgets."""
    reconnect_max_delay: float = Field(
        default=30.0, gt=0, le=3600, validation_alias=_env("BRIDGE_RECONNECT_MAX_DELAY")
    )
    shutdown_timeout: float = Field(
        default=10.0, gt=0, le=300, validation_alias=_env("BRIDGE_SHUTDOWN_TIMEOUT")
    )
    slack_file_hosts: str = Field(
        default="files.slack.com,files-edge.slack.com,files-origin.slack.com,slack-files.com",
        validation_alias=_env("BRIDGE_SLACK_FILE_HOSTS"),
    )
    max_file_bytes: int = Field(
        default=10 << 20, gt=0, le=10 << 20, validation_alias=_env("BRIDGE_MAX_FILE_BYTES")
    )
    agent_file_max_bytes: int = Field(
        default=10 << 20, ge=0, le=1 << 30, validation_alias=_env("BRIDGE_AGENT_FILE_MAX_BYTES")
    )
    file_timeout: float = Field(default=30.0, gt=0, le=600, validation_alias=_env("BRIDGE_FILE_TIMEOUT"))
    thread_context: bool = Field(default=True, validation_alias=_env("BRIDGE_THREAD_CONTEXT"))
    thread_context_messages: int = Field(
        default=20, ge=0, le=200, validation_alias=_env("BRIDGE_THREAD_CONTEXT_MESSAGES")
    )
    thread_context_chars: int = Field(
        default=8000, ge=0, le=100_000, validation_alias=_env("BRIDGE_THREAD_CONTEXT_CHARS")
    )

    identity_mode: Literal["shared", "linked"] = Field(
        default="shared", validation_alias=_env("BRIDGE_IDENTITY_MODE")
    )
    encryption_key: SecretStr | None = Field(default=None, validation_alias=_env("BRIDGE_ENCRYPTION_KEY"))
    allowed_channels: IdList = Field(default=(), validation_alias=_env("BRIDGE_ALLOWED_CHANNELS"))
    allowed_users: IdList = Field(default=(), validation_alias=_env("BRIDGE_ALLOWED_USERS"))
    allowed_teams: IdList = Field(default=(), validation_alias=_env("BRIDGE_ALLOWED_TEAMS"))
    allow_guests: bool = Field(default=False, validation_alias=_env("BRIDGE_ALLOW_GUESTS"))
    allow_external_users: bool = Field(default=False, validation_alias=_env("BRIDGE_ALLOW_EXTERNAL_USERS"))
    admins: IdList = Field(default=(), validation_alias=_env("BRIDGE_ADMINS"))
    control: Literal["requester", "channel"] = Field(
        default="requester", validation_alias=_env("BRIDGE_CONTROL")
    )
    link_attempts: int = Field(default=5, ge=1, le=1000, validation_alias=_env("BRIDGE_LINK_ATTEMPTS"))
    link_attempt_window: float = Field(
        default=900.0, gt=0, le=86400, validation_alias=_env("BRIDGE_LINK_ATTEMPT_WINDOW")
    )
    directory_ttl: float = Field(default=300.0, ge=0, le=86400, validation_alias=_env("BRIDGE_DIRECTORY_TTL"))
    stream_silence_timeout: float = Field(
        default=45.0, gt=0, le=3600, validation_alias=_env("BRIDGE_STREAM_SILENCE_TIMEOUT")
    )
    stream_retry_interval: float = Field(
        default=60.0, gt=0, le=86400, validation_alias=_env("BRIDGE_STREAM_RETRY_INTERVAL")
    )
    watch_retry_after: float = Field(
        default=60.0, gt=0, le=3600, validation_alias=_env("BRIDGE_WATCH_RETRY_AFTER")
    )
    show_reasoning: bool = Field(default=False, validation_alias=_env("BRIDGE_SHOW_REASONING"))
    thread_style: Literal["compact", "full"] = Field(
        default="compact", validation_alias=_env("BRIDGE_THREAD_STYLE")
    )
    cost_footer: bool = Field(default=False, validation_alias=_env("BRIDGE_COST_FOOTER"))
    slow_start_after: float = Field(
        default=10.0, gt=0, le=3600, validation_alias=_env("BRIDGE_SLOW_START_AFTER")
    )
    home_debounce: float = Field(default=2.0, ge=0, le=600, validation_alias=_env("BRIDGE_HOME_DEBOUNCE"))
    lease_duration: float = Field(default=6.0, gt=0, le=600, validation_alias=_env("BRIDGE_LEASE_DURATION"))
    """Seconds a replica's leases (PostgreSQL) outlive its last heartbeat: how long a dead replica's
    chats wait before another takes them over."""
    lease_heartbeat: float = Field(default=1.5, gt=0, le=300, validation_alias=_env("BRIDGE_LEASE_HEARTBEAT"))
    """Seconds between a replica's lease renewals, and between its looks for work to take over."""

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("slack_file_hosts")
    @classmethod
    def _file_hosts(cls, value: str) -> str:
        hosts = [h.strip().lower() for h in value.split(",") if h.strip()]
        if not hosts or any("/" in h or ":" in h for h in hosts):
            raise ValueError("must be a comma-separated list of host names, e.g. files.slack.com")
        return ",".join(hosts)

    @property
    def file_hosts(self) -> frozenset[str]:
        """The hosts Slack files are downloaded from (``BRIDGE_SLACK_FILE_HOSTS``)."""
        return frozenset(self.slack_file_hosts.split(","))

    @field_validator("coder_url")
    @classmethod
    def _coder_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://coder.example.com")
        return value.rstrip("/")

    @field_validator("slack_redirect_uri")
    @classmethod
    def _redirect_uri(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be the public http(s) URL of /slack/oauth_redirect")
        return value.strip()

    @field_validator("slack_client_id")
    @classmethod
    def _client_id(cls, value: str | None) -> str | None:
        """An empty ``SLACK_CLIENT_ID=`` means "no distribution", like leaving it unset."""
        return value.strip() or None if value is not None else None

    @field_validator(
        "allowed_channels", "allowed_users", "allowed_teams", "admins", "slack_scopes", mode="before"
    )
    @classmethod
    def _id_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("allowed_channels")
    @classmethod
    def _channel_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if item[:1] not in ("C", "G") or not item.isalnum():
                raise ValueError(
                    f"{item!r} is not a channel id (C… or G…; copy it from the channel's details)"
                )
        return value

    @field_validator("allowed_teams")
    @classmethod
    def _team_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if item[:1] not in ("T", "E") or not item.isalnum():
                raise ValueError(f"{item!r} is not a workspace id (T…) or Enterprise Grid org id (E…)")
        return value

    @field_validator("allowed_users", "admins")
    @classmethod
    def _user_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if item[:1] not in ("U", "W", "S") or not item.isalnum():
                raise ValueError(f"{item!r} is not a user id (U…/W…) or user group id (S…)")
        return value

    @field_validator("encryption_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        keys = encryption_keys(value)
        if not keys:
            return None
        for key in keys:
            try:
                Fernet(key)
            except ValueError:
                raise ValueError(
                    "must be Fernet keys (32 url-safe base64-encoded bytes each), comma-separated; "
                    "create one with: python -c "
                    '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
                ) from None
        return value

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _unset_port(cls, value: object) -> object:
        """An empty ``BRIDGE_METRICS_PORT=`` leaves ``/metrics`` on the main listener, like unset."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("coder_model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        """An empty ``BRIDGE_CODER_MODEL=`` means "the server's first model", like leaving it unset."""
        return value.strip() or None if value is not None else None

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres://")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _no_placeholders(self) -> Settings:
        for name in (
            "slack_bot_token",
            "slack_signing_secret",
            "slack_app_token",
            "slack_client_secret",
            "coder_session_token",
        ):
            secret: SecretStr | None = getattr(self, name)
            if secret is not None and secret.get_secret_value().strip().lower() in _PLACEHOLDERS:
                raise ValueError(f"{name.upper()} is a placeholder; set the real value")
        return self

    @model_validator(mode="after")
    def _status_reactions_are_not_controls(self) -> Settings:
        """The bot's own reactions come back as events: one named like a control would act on the chat."""
        controls = {self.reaction_interrupt, self.reaction_archive, self.reaction_promote}
        for name in ("reaction_working", "reaction_done", "reaction_failed", "reaction_queued"):
            if getattr(self, name).strip(":") in controls:
                raise ValueError(f"BRIDGE_{name.upper()} must differ from the control reactions")
        return self

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> Settings:
        """A lease renewed less often than it lasts would lapse between two heartbeats."""
        if self.lease_heartbeat * 2 > self.lease_duration:
            raise ValueError("BRIDGE_LEASE_HEARTBEAT must be at most half of BRIDGE_LEASE_DURATION")
        return self

    @property
    def intake_secret(self) -> SecretStr | None:
        """The secret recorded Slack events are tagged under: the one that authenticates Slack's
        deliveries (the signing secret, else the app-level token of Socket Mode)."""
        return self.slack_signing_secret or self.slack_app_token

    @property
    def socket_mode(self) -> bool:
        """Socket Mode replaces HTTP event delivery whenever an app-level token is configured."""
        return self.slack_app_token is not None

    @property
    def distribution(self) -> bool:
        """Installed through Slack's OAuth flow into many workspaces (client id and secret set), rather
        than run with one workspace's bot token."""
        return self.slack_client_id is not None or self.slack_client_secret is not None

    def has_credentials(self) -> bool:
        """Whether any Slack or Coder credential is configured (otherwise ``bridge`` plays the demo)."""
        return any(
            value is not None
            for value in (
                self.slack_bot_token,
                self.slack_app_token,
                self.slack_client_id,
                self.coder_url,
                self.coder_session_token,
            )
        )

    def secrets(self) -> list[str]:
        """Every configured secret value, so output can be checked for leaks."""
        values = (
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.slack_client_secret,
            self.coder_session_token,
        )
        found = [v.get_secret_value() for v in values if v is not None]
        if self.encryption_key is not None:
            found.append(self.encryption_key.get_secret_value())
            found.extend(encryption_keys(self.encryption_key))
        return found

    def require_serve(self) -> None:
        """Raise ``ConfigError`` naming the first setting ``bridge serve`` cannot run without."""
        self._require_slack_mode()
        required = {
            "CODER_URL": self.coder_url,
            "CODER_SESSION_TOKEN": self.coder_session_token,
        }
        for name, value in required.items():
            if value is None:
                raise ConfigError(f"{name} is not set (required for `bridge serve`)")
        if not self.socket_mode and self.slack_signing_secret is None:
            raise ConfigError(
                "SLACK_SIGNING_SECRET is not set (required in HTTP mode; set SLACK_APP_TOKEN for Socket Mode)"
            )
        token = self.slack_bot_token
        if token is not None and not token.get_secret_value().startswith("xoxb-"):
            raise ConfigError("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
        app = self.slack_app_token
        if app is not None and not app.get_secret_value().startswith("xapp-"):
            raise ConfigError("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
        if self.identity_mode == "linked" and self.encryption_key is None:
            raise ConfigError(
                "BRIDGE_ENCRYPTION_KEY is not set (required with BRIDGE_IDENTITY_MODE=linked, to encrypt "
                "people's Coder tokens at rest)"
            )

    def _require_slack_mode(self) -> None:
        """One way to reach Slack: one workspace's bot token, or installs through OAuth, never both."""
        if self.slack_bot_token is not None and self.distribution:
            raise ConfigError(
                "SLACK_BOT_TOKEN and SLACK_CLIENT_ID/SLACK_CLIENT_SECRET are both set: which one the bridge "
                "should use is ambiguous; keep the bot token for one workspace, or the client id and secret "
                "to install into many"
            )
        if not self.distribution:
            if self.slack_bot_token is None:
                raise ConfigError(
                    "SLACK_BOT_TOKEN is not set (required for `bridge serve`, unless SLACK_CLIENT_ID and "
                    "SLACK_CLIENT_SECRET install the bridge into workspaces through OAuth)"
                )
            return
        if self.slack_client_id is None:
            raise ConfigError("SLACK_CLIENT_ID is not set (required with SLACK_CLIENT_SECRET)")
        if self.slack_client_secret is None:
            raise ConfigError("SLACK_CLIENT_SECRET is not set (required with SLACK_CLIENT_ID)")
        if self.encryption_key is None:
            raise ConfigError(
                "BRIDGE_ENCRYPTION_KEY is not set (required with SLACK_CLIENT_ID, to encrypt the "
                "workspaces' Slack tokens at rest)"
            )


def load_settings() -> Settings:
    """Read settings from the environment and ``.env``; malformed values become one ``ConfigError``."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming the offending variable, without echoing its (possibly secret) input."""
    first = exc.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    if not first["loc"]:
        return message
    field = str(first["loc"][0])
    return f"{_ENV_NAMES.get(field, field.upper())} is invalid: {message}"


def _env_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names[field] = str(alias.choices[0])
            for choice in alias.choices:
                names[str(choice)] = str(alias.choices[0])
    return names


_ENV_NAMES = _env_names()
