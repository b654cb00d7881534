"""Alembic migration scripts, installed as ``bridge.migrations``."""
