"""Simulators of the outside systems (Slack, Coder) that speak the real wire formats over loopback.

They serve the tests, the offline demo and the benchmarks. Nothing here imports the rest of ``bridge``,
so a misreading of a wire format is never copied into both sides of a test.
"""
