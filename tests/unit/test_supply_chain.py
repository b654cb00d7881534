"""Supply chain: CI installs what the hashed lock names, the base image is pinned, packages are audited."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKS = [ROOT / "requirements" / "runtime.lock", ROOT / "requirements" / "dev.lock"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def audit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run CI's dependency audit as .ci/run does."""
    command = [sys.executable, str(ROOT / ".ci" / "audit.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)


def quick_start_commands() -> list[str]:
    """The shell commands of the README's Quick start, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_the_readme_runs_the_product_from_the_hashed_runtime_lock() -> None:
    """The Quick start's first command installs the runtime lock with hashes required, then the bridge
    itself without resolving anything else, and runs it."""
    command = quick_start_commands()[0]
    assert "pip install -q --require-hashes -r requirements/runtime.lock" in command
    assert "pip install -q --no-deps --no-build-isolation ." in command
    assert command.endswith("&& .venv/bin/bridge")


def test_ci_runs_the_readme_test_command_which_installs_from_the_hashed_lock() -> None:
    """The README's test command is .ci/run's last line, word for word, and both install from the
    lock with hashes required, then the package itself without resolving anything else."""
    command = quick_start_commands()[1]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == command
    assert "set -euo pipefail" in ci
    assert "pip install -q --require-hashes -r requirements/dev.lock" in command
    assert "pip install -q --no-deps --no-build-isolation -e ." in command
    assert any(line.startswith(".venv/bin/python .ci/audit.py") for line in ci)


def test_locks_pin_every_package_with_hashes() -> None:
    """Every entry of each lock is one exact version with its hashes; the runtime lock is the dev lock's
    subset, version for version, and holds every runtime dependency pyproject names."""
    for lock in LOCKS:
        entries = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text().split("\n", 2)[2].strip())
        assert entries
        for entry in entries:
            assert PIN.match(entry), entry.splitlines()[0]
            assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), entry.splitlines()[0]
    runtime, dev = ({canonicalize_name(n): v for n, v in PIN.findall(lock.read_text())} for lock in LOCKS)
    assert runtime.items() <= dev.items()
    pyproject = (ROOT / "pyproject.toml").read_text()
    listed = re.search(r"^dependencies = \[(.*?)^\]", pyproject, re.MULTILINE | re.DOTALL)
    assert listed is not None
    for name in re.findall(r'^\s+"([A-Za-z0-9_.-]+)', listed.group(1), re.MULTILINE):
        assert canonicalize_name(name) in runtime, name


def test_container_base_image_is_pinned_by_digest_and_installs_from_the_lock() -> None:
    """The Dockerfile's FROM names its image by sha256 digest, and packages come from the hashed lock."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim@sha256:[0-9a-f]{64}$", dockerfile, re.MULTILINE)
    assert "pip install --no-cache-dir --require-hashes -r requirements/runtime.lock" in dockerfile
    assert "--no-deps --no-build-isolation ." in dockerfile


def test_locks_and_floors_pass_the_audit_offline() -> None:
    """No advisory of the committed snapshot affects a pinned version or a pyproject floor."""
    done = audit("--offline", *map(str, LOCKS))
    assert done.returncode == 0, done.stderr
    assert "no known vulnerability" in done.stdout


def test_a_vulnerable_pin_or_floor_fails_the_audit_even_when_the_source_is_unreachable(
    tmp_path: Path,
) -> None:
    """With the live advisory source unreachable (a proxy nothing listens on), the audit warns once per
    lock and checks the snapshot: a pin or a floor an advisory affects fails it, naming the advisory;
    the real locks still pass."""
    vulnerable = tmp_path / "vulnerable.lock"
    vulnerable.write_text(f"aiohttp==3.12.13 \\\n    --hash=sha256:{'0' * 64}\n")
    low_floor = tmp_path / "pyproject.toml"
    low_floor.write_text('[project]\nname = "x"\ndependencies = ["cryptography>=43"]\n')
    unreachable = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    done = audit(str(vulnerable), env=unreachable)
    assert done.returncode == 1
    assert "could not reach its advisory source" in done.stderr
    assert "aiohttp 3.12.13 (vulnerable.lock) is affected by CVE-2025-53643" in done.stderr
    done = audit("--offline", "--pyproject", str(low_floor), str(LOCKS[0]))
    assert done.returncode == 1
    assert "cryptography>=43 (pyproject.toml) admits versions affected by GHSA-h4gh-qq45-vh27" in done.stderr
    done = audit(str(LOCKS[0]), env=unreachable)
    assert done.returncode == 0, done.stderr
    assert "relying on the advisory snapshot" in done.stderr
