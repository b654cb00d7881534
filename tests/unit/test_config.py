"""Settings: the variables of interface.md, one-line errors, secrets never echoed."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bridge.config import ConfigError, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """Each test reads only the variables it sets (no .env, nothing from the developer's shell)."""
    monkeypatch.chdir(str(tmp_path))
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "SLACK_API_URL",
        "SLACK_CLIENT_ID",
        "SLACK_CLIENT_SECRET",
        "BRIDGE_SLACK_REDIRECT_URI",
        "BRIDGE_SLACK_SCOPES",
        "CODER_URL",
        "CODER_SESSION_TOKEN",
        "CODER_ORGANIZATION_ID",
        "DATABASE_URL",
        "HOST",
        "PORT",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "BRIDGE_EDIT_INTERVAL",
        "BRIDGE_CODER_API",
        "BRIDGE_IDENTITY_MODE",
        "BRIDGE_ENCRYPTION_KEY",
        "BRIDGE_ALLOWED_CHANNELS",
        "BRIDGE_ALLOWED_USERS",
        "BRIDGE_ALLOWED_TEAMS",
        "BRIDGE_ALLOW_GUESTS",
        "BRIDGE_ALLOW_EXTERNAL_USERS",
        "BRIDGE_ADMINS",
        "BRIDGE_CONTROL",
        "BRIDGE_CODER_MODEL",
        "BRIDGE_AISDK_ARCHIVE_DELETES",
        "BRIDGE_LEGACY_ARCHIVE_DELETES",
        "BRIDGE_METRICS_HOST",
        "BRIDGE_METRICS_PORT",
        "BRIDGE_THREAD_CONTEXT",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_match_the_interface() -> None:
    """Unset variables take the defaults interface.md documents."""
    settings = load_settings()
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.database_url == "sqlite:///bridge.db"
    assert (settings.host, settings.port) == ("0.0.0.0", 3000)
    assert (settings.log_level, settings.log_format) == ("INFO", "text")
    assert (settings.reaction_interrupt, settings.reaction_archive, settings.reaction_promote) == (
        "octagonal_sign",
        "file_cabinet",
        "arrow_double_up",
    )
    assert not settings.socket_mode
    assert not settings.has_credentials()


def test_thread_context_is_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """BRIDGE_THREAD_CONTEXT is on by default and takes on/off."""
    assert load_settings().thread_context
    monkeypatch.setenv("BRIDGE_THREAD_CONTEXT", "off")
    assert not load_settings().thread_context


def test_environment_and_dotenv_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """Variables come from the environment or a .env file in the working directory."""
    with open(".env", "w") as env_file:
        env_file.write("CODER_URL=https://coder.example.com/\nBRIDGE_EDIT_INTERVAL=2.5\n")
    monkeypatch.setenv("SLACK_API_URL", "https://slack.example.gov/api")
    settings = load_settings()
    assert settings.coder_url == "https://coder.example.com"
    assert settings.edit_interval == 2.5
    assert settings.slack_api_url == "https://slack.example.gov/api/"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PORT", "abc", "PORT is invalid"),
        ("CODER_URL", "coder.example.com", "CODER_URL is invalid"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL is invalid"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL is invalid"),
        ("SLACK_BOT_TOKEN", "changeme", "SLACK_BOT_TOKEN is a placeholder"),
    ],
)
def test_malformed_setting_is_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    """A malformed value stops loading with one line naming the variable, without echoing it."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    if name == "SLACK_BOT_TOKEN":
        assert "changeme" not in message


def test_serve_requirements_name_the_missing_variable() -> None:
    """`serve` needs the bot token, Coder URL and token, and a signing secret unless in Socket Mode."""
    base = {
        "slack_bot_token": SecretStr("xoxb-1"),
        "coder_url": "https://c",
        "coder_session_token": SecretStr("t"),
    }
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        Settings(**base).require_serve()
    Settings(**base, slack_signing_secret=SecretStr("s3cret-value")).require_serve()
    Settings(**base, slack_app_token=SecretStr("xapp-1")).require_serve()
    with pytest.raises(ConfigError, match="CODER_URL"):
        Settings(slack_bot_token=SecretStr("xoxb-1")).require_serve()
    with pytest.raises(ConfigError, match="must be a bot token"):
        Settings(
            **{**base, "slack_bot_token": SecretStr("xoxp-user")}, slack_app_token=SecretStr("xapp-1")
        ).require_serve()


def test_secrets_are_hidden_in_repr() -> None:
    """Printing settings never shows a secret."""
    settings = Settings(
        slack_bot_token=SecretStr("xoxb-very-secret"), coder_session_token=SecretStr("tok-123456")
    )
    assert "xoxb-very-secret" not in repr(settings)
    assert "tok-123456" not in str(settings.model_dump())
    assert sorted(settings.secrets()) == ["tok-123456", "xoxb-very-secret"]


def test_access_settings_default_to_the_safe_side() -> None:
    """Shared identity, all channels, everyone in the workspace, no guests or outsiders, requester control."""
    settings = load_settings()
    assert settings.identity_mode == "shared"
    assert (settings.allowed_channels, settings.allowed_users, settings.admins) == ((), (), ())
    assert not settings.allow_guests
    assert not settings.allow_external_users
    assert settings.control == "requester"


def test_id_lists_are_comma_separated_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Channel, user and group ids come comma-separated; something that is no id is named."""
    monkeypatch.setenv("BRIDGE_ALLOWED_CHANNELS", "C0ENG, G0OPS")
    monkeypatch.setenv("BRIDGE_ALLOWED_USERS", "U0ALICE,S0ENG")
    monkeypatch.setenv("BRIDGE_ADMINS", "W0BOSS")
    monkeypatch.setenv("BRIDGE_ALLOWED_TEAMS", "T0001,E0ORG")
    settings = load_settings()
    assert settings.allowed_teams == ("T0001", "E0ORG")
    assert settings.allowed_channels == ("C0ENG", "G0OPS")
    assert settings.allowed_users == ("U0ALICE", "S0ENG")
    assert settings.admins == ("W0BOSS",)
    monkeypatch.setenv("BRIDGE_ALLOWED_USERS", "@alice")
    with pytest.raises(ConfigError, match="BRIDGE_ALLOWED_USERS is invalid"):
        load_settings()
    monkeypatch.setenv("BRIDGE_ALLOWED_USERS", "U0ALICE")
    monkeypatch.setenv("BRIDGE_ALLOWED_TEAMS", "C0ENG")
    with pytest.raises(ConfigError, match="BRIDGE_ALLOWED_TEAMS is invalid"):
        load_settings()


def test_linked_mode_needs_a_valid_encryption_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linked identity needs BRIDGE_ENCRYPTION_KEY; a bad key is named, never echoed; keys are secrets."""
    base = {
        "slack_bot_token": SecretStr("xoxb-1"),
        "slack_signing_secret": SecretStr("s3cret-value"),
        "coder_url": "https://c",
        "coder_session_token": SecretStr("t0k3n-value"),
        "identity_mode": "linked",
    }
    with pytest.raises(ConfigError, match="BRIDGE_ENCRYPTION_KEY is not set"):
        Settings(**base).require_serve()
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings = Settings(**base, encryption_key=SecretStr(f"{new},{old}"))
    settings.require_serve()
    assert {new, old} <= set(settings.secrets())
    monkeypatch.setenv("BRIDGE_ENCRYPTION_KEY", "hunter2-not-a-key")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "BRIDGE_ENCRYPTION_KEY is invalid" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_file_hosts_are_host_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """BRIDGE_SLACK_FILE_HOSTS is a list of host names (Slack's by default); URLs are refused."""
    assert "files.slack.com" in load_settings().file_hosts
    monkeypatch.setenv("BRIDGE_SLACK_FILE_HOSTS", " Files.Slack-Gov.com , files.slack.com")
    assert load_settings().file_hosts == {"files.slack-gov.com", "files.slack.com"}
    monkeypatch.setenv("BRIDGE_SLACK_FILE_HOSTS", "https://files.slack.com/")
    with pytest.raises(ConfigError, match="BRIDGE_SLACK_FILE_HOSTS is invalid"):
        load_settings()


@pytest.mark.parametrize(
    ("value", "expected"), [("claude-3-7-sonnet-latest", "claude-3-7-sonnet-latest"), ("", None)]
)
@pytest.mark.parametrize("deletes", ["BRIDGE_AISDK_ARCHIVE_DELETES", "BRIDGE_LEGACY_ARCHIVE_DELETES"])
def test_coder_model_setting(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str | None, deletes: str
) -> None:
    """BRIDGE_CODER_MODEL names the 2025 API's model; set empty, it means the server's first. The
    archive opt-in is read under its name and under its first one."""
    monkeypatch.setenv("BRIDGE_CODER_MODEL", value)
    monkeypatch.setenv(deletes, "true")
    settings = load_settings()
    assert settings.coder_model == expected
    assert settings.aisdk_archive_deletes is True


def test_metrics_listener_is_optional_and_private_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """BRIDGE_METRICS_PORT unset or empty keeps /metrics on the main listener; set, it gets a listener
    of its own on loopback unless BRIDGE_METRICS_HOST says otherwise."""
    assert load_settings().metrics_port is None
    monkeypatch.setenv("BRIDGE_METRICS_PORT", "")
    assert load_settings().metrics_port is None
    monkeypatch.setenv("BRIDGE_METRICS_PORT", "9102")
    settings = load_settings()
    assert (settings.metrics_host, settings.metrics_port) == ("127.0.0.1", 9102)
    monkeypatch.setenv("BRIDGE_METRICS_PORT", "nine")
    with pytest.raises(ConfigError, match="BRIDGE_METRICS_PORT is invalid"):
        load_settings()


def test_serve_takes_a_bot_token_or_oauth_credentials_but_not_both() -> None:
    """One workspace's bot token, or a client id and secret to install into many: both is ambiguous;
    installing through OAuth stores tokens, so it needs the encryption key."""
    base = {
        "coder_url": "https://c",
        "coder_session_token": SecretStr("t"),
        "slack_signing_secret": SecretStr("s3cret-value"),
    }
    oauth = {"slack_client_id": "1111.2222", "slack_client_secret": SecretStr("client-s3cret")}
    key = SecretStr(Fernet.generate_key().decode())
    with pytest.raises(ConfigError) as caught:
        Settings(**base, **oauth, slack_bot_token=SecretStr("xoxb-1"), encryption_key=key).require_serve()
    assert "ambiguous" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert "client-s3cret" not in str(caught.value)
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN is not set"):
        Settings(**base).require_serve()
    with pytest.raises(ConfigError, match="SLACK_CLIENT_SECRET is not set"):
        Settings(**base, slack_client_id="1111.2222", encryption_key=key).require_serve()
    with pytest.raises(ConfigError, match="BRIDGE_ENCRYPTION_KEY is not set"):
        Settings(**base, **oauth).require_serve()
    distributed = Settings(**base, **oauth, encryption_key=key)
    distributed.require_serve()
    assert distributed.distribution
    assert "client-s3cret" in distributed.secrets()
    assert not Settings(**base, slack_bot_token=SecretStr("xoxb-1")).distribution


def test_oauth_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_CLIENT_ID", "1111.2222")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "client-s3cret")
    monkeypatch.setenv("BRIDGE_SLACK_REDIRECT_URI", "https://bridge.example.com/slack/oauth_redirect")
    monkeypatch.setenv("BRIDGE_SLACK_SCOPES", "chat:write, commands")
    settings = load_settings()
    assert settings.slack_client_id == "1111.2222"
    assert settings.slack_redirect_uri == "https://bridge.example.com/slack/oauth_redirect"
    assert settings.slack_scopes == ("chat:write", "commands")
    monkeypatch.setenv("BRIDGE_SLACK_REDIRECT_URI", "bridge.example.com/slack/oauth_redirect")
    with pytest.raises(ConfigError, match="BRIDGE_SLACK_REDIRECT_URI is invalid"):
        load_settings()
