"""Dependency audit for CI: the pins of the lock files, and pyproject's floors, against known advisories.

    python .ci/audit.py [--offline] [--pyproject FILE] LOCK...

Two sources, and a vulnerability either one finds fails the audit:

- the live one: pip-audit asks PyPI (whose JSON API carries the OSV database) about every pin;
- ``requirements/advisories.json``, a dated snapshot committed beside the locks, always checked,
  for every pin and for the lowest version pyproject.toml admits of each dependency.

When the live source cannot be asked (a network failure, or an index without PyPI's JSON API that
answers "not found" for every package), the audit says so in one warning and relies on the
snapshot alone: a network failure is a warning, a found vulnerability never is. ``--offline`` skips
the live source. Exit status: 0 when nothing known affects a pin or a floor, 1 otherwise (or when
pip-audit fails for a reason other than the network).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "requirements" / "advisories.json"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)
NETWORK_FAILURES = (
    "ConnectionError",
    "NameResolutionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "timed out",
    "ProxyError",
)


def pins(lock: Path) -> dict[str, str]:
    """Package -> pinned version of a lock file."""
    return {canonicalize_name(name): version for name, version in PIN.findall(lock.read_text())}


def floors(pyproject: Path) -> dict[str, Version | None]:
    """Package -> the lowest version pyproject admits (None: no lower bound), over every requirement
    list: the dependencies, each extra, and the build system's."""
    data = tomllib.loads(pyproject.read_text())
    project = data.get("project", {})
    lists = [project.get("dependencies", []), *project.get("optional-dependencies", {}).values()]
    lists.append(data.get("build-system", {}).get("requires", []))
    found: dict[str, Version | None] = {}
    for text in (line for group in lists for line in group):
        requirement = Requirement(text)
        bounds = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "~=", "==")]
        found[canonicalize_name(requirement.name)] = max(bounds) if bounds else None
    return found


class Snapshot:
    """The committed advisories: which versions of which package each one affects."""

    def __init__(self, path: Path) -> None:
        data = json.loads(path.read_text())
        self.updated: str = data["updated"]
        self.advisories: list[dict[str, Any]] = data["advisories"]

    def affecting(self, package: str, version: Version) -> list[str]:
        """Ids of the advisories whose ranges hold ``version`` of ``package``."""
        return [
            a["id"]
            for a in self.advisories
            if canonicalize_name(a["package"]) == package
            and any(version in SpecifierSet(r) for r in a["affected"])
        ]

    def known(self, package: str) -> bool:
        """Whether any advisory names ``package``."""
        return any(canonicalize_name(a["package"]) == package for a in self.advisories)


def snapshot_findings(snapshot: Snapshot, locks: list[Path], pyproject: Path) -> list[str]:
    """One line per pin or floor a known advisory affects."""
    findings = []
    for lock in locks:
        for package, version in pins(lock).items():
            for advisory in snapshot.affecting(package, Version(version)):
                findings.append(f"{package} {version} ({lock.name}) is affected by {advisory}")
    for package, floor in floors(pyproject).items():
        if floor is None:
            if snapshot.known(package):
                findings.append(f"{package} has no lower bound in {pyproject.name}, and advisories name it")
            continue
        for advisory in snapshot.affecting(package, floor):
            findings.append(f"{package}>={floor} ({pyproject.name}) admits versions affected by {advisory}")
    return findings


def live_findings(lock: Path) -> tuple[list[str], str | None]:
    """What pip-audit finds for a lock's pins, and why the live source could not answer (or None)."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        command = [sys.executable, "-m", "pip_audit", "--requirement", str(lock), "--disable-pip"]
        command += ["--progress-spinner", "off", "--format", "json", "--output", str(report)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        except subprocess.TimeoutExpired:
            return [], "pip-audit timed out"
        if not report.exists():
            reason = next((m for m in NETWORK_FAILURES if m in done.stderr), None)
            if reason is None:
                tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
                raise SystemExit(f"audit: pip-audit failed on {lock.name}: {tail[0]}")
            return [], f"pip-audit could not reach its advisory source ({reason})"
        dependencies = json.loads(report.read_text())["dependencies"]
    findings = [
        f"{d['name']} {d['version']} ({lock.name}) is affected by {v['id']} (fixed in {v['fix_versions']})"
        for d in dependencies
        for v in d.get("vulns", [])
    ]
    skipped = [d for d in dependencies if "skip_reason" in d]
    if skipped:
        return findings, f"the advisory source did not answer for {len(skipped)} of {len(dependencies)} pins"
    return findings, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("locks", nargs="+", type=Path)
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    parser.add_argument("--offline", action="store_true", help="check the committed snapshot only")
    args = parser.parse_args()
    snapshot = Snapshot(SNAPSHOT)
    findings = snapshot_findings(snapshot, args.locks, args.pyproject)
    if not args.offline:
        for lock in args.locks:
            found, unreachable = live_findings(lock)
            findings += found
            if unreachable is not None:
                print(
                    f"audit: warning: {unreachable} for {lock.name}; "
                    f"relying on the advisory snapshot of {snapshot.updated}",
                    file=sys.stderr,
                )
    for line in findings:
        print(f"audit: {line}", file=sys.stderr)
    if findings:
        return 1
    source = "the advisory snapshot" if args.offline else "pip-audit and the advisory snapshot"
    print(f"audit: no known vulnerability in {', '.join(str(p) for p in args.locks)} ({source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
