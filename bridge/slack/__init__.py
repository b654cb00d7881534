"""Slack side: Bolt listeners, the Web API poster, and pure renderers."""
