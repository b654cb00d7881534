"""The relay: Slack messages to Coder chats and Coder stream events back to Slack threads."""
