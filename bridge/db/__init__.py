"""Persistence: the thread <-> chat links and everything the relay must remember across restarts."""
