"""Development tooling that is not part of the bridge (not packaged)."""
