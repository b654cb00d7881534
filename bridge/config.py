"""Settings, read from the environment (or a ``.env`` file) exactly as ``interface.md`` names them.

``load_settings`` is called by the CLI; nothing reads the environment at import time, so tests and
the demo build ``Settings`` objects directly. Secrets are ``SecretStr`` so they never show up in a
repr, a log line or a validation error.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PLACEHOLDERS = {"changeme", "change-me", "changethis", "xoxb-...", "xapp-...", "secret", "todo", ""}


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it and never contains a secret."""


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


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
    coder_url: str | None = Field(default=None, validation_alias=_env("CODER_URL"))
    coder_session_token: SecretStr | None = Field(default=None, validation_alias=_env("CODER_SESSION_TOKEN"))
    coder_organization_id: str | None = Field(default=None, validation_alias=_env("CODER_ORGANIZATION_ID"))
    database_url: str = Field(default="sqlite:///bridge.db", validation_alias=_env("DATABASE_URL"))
    host: str = Field(default="0.0.0.0", validation_alias=_env("HOST"))
    port: int = Field(default=3000, ge=0, le=65535, validation_alias=_env("PORT"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias=_env("LOG_LEVEL")
    )
    log_format: Literal["text", "json"] = Field(default="text", validation_alias=_env("LOG_FORMAT"))

    reaction_interrupt: str = Field(
        default="octagonal_sign", validation_alias=_env("BRIDGE_REACTION_INTERRUPT")
    )
    reaction_archive: str = Field(default="file_cabinet", validation_alias=_env("BRIDGE_REACTION_ARCHIVE"))
    reaction_promote: str = Field(default="arrow_double_up", validation_alias=_env("BRIDGE_REACTION_PROMOTE"))
    coder_api: Literal["auto", "experimental", "v2", "v2-legacy"] = Field(
        default="auto", validation_alias=_env("BRIDGE_CODER_API")
    )
    coder_model: str | None = Field(default=None, validation_alias=_env("BRIDGE_CODER_MODEL"))
    legacy_archive_deletes: bool = Field(
        default=False, validation_alias=_env("BRIDGE_LEGACY_ARCHIVE_DELETES")
    )
    edit_interval: float = Field(default=1.0, ge=0, le=60, validation_alias=_env("BRIDGE_EDIT_INTERVAL"))
    slack_rate_scale: float = Field(
        default=1.0, gt=0, le=1000, validation_alias=_env("BRIDGE_SLACK_RATE_SCALE")
    )
    reconnect_max_delay: float = Field(
        default=30.0, gt=0, le=3600, validation_alias=_env("BRIDGE_RECONNECT_MAX_DELAY")
    )
    shutdown_timeout: float = Field(
        default=10.0, gt=0, le=300, validation_alias=_env("BRIDGE_SHUTDOWN_TIMEOUT")
    )

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("coder_url")
    @classmethod
    def _coder_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://coder.example.com")
        return value.rstrip("/")

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
        for name in ("slack_bot_token", "slack_signing_secret", "slack_app_token", "coder_session_token"):
            secret: SecretStr | None = getattr(self, name)
            if secret is not None and secret.get_secret_value().strip().lower() in _PLACEHOLDERS:
                raise ValueError(f"{name.upper()} is a placeholder; set the real value")
        return self

    @property
    def socket_mode(self) -> bool:
        """Socket Mode replaces HTTP event delivery whenever an app-level token is configured."""
        return self.slack_app_token is not None

    def has_credentials(self) -> bool:
        """Whether any Slack or Coder credential is configured (otherwise ``bridge`` plays the demo)."""
        return any(
            value is not None
            for value in (
                self.slack_bot_token,
                self.slack_app_token,
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
            self.coder_session_token,
        )
        return [v.get_secret_value() for v in values if v is not None]

    def require_serve(self) -> None:
        """Raise ``ConfigError`` naming the first setting ``bridge serve`` cannot run without."""
        required = {
            "SLACK_BOT_TOKEN": self.slack_bot_token,
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
