"""Coder Chats API client: typed models, one backend per API generation, streams.

Nothing in this package knows about Slack or the database, so it could be published on its own.
"""
