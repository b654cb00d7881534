"""slack-coder-bridge: drive Coder Agents from Slack threads."""

__version__ = "0.1.0"
