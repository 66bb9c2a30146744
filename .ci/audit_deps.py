"""Known vulnerabilities in the locked dependencies (constraints.txt): CI fails if any pin is affected.

1. pip-audit against its default service (the PyPI JSON API, per pinned version), ``--strict``:
   every pin must be audited, any known vulnerability fails the run.
2. If that service cannot be reached (a build network that reaches the package index but not the
   per-version JSON API answers 404 for every pin, as on the project's own machines), the pins are
   checked against an offline database shipped as a package, ``safety-db`` (PyUp's free database;
   its last release is dated in the output, so a reader sees how old the check is). Any match fails.

Either way the run prints which database answered. ``.ci/audit-ignore`` may list advisory ids
(one per line, ``# why``) that were reviewed and do not apply; nothing else is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints.txt"
IGNORE = ROOT / ".ci" / "audit-ignore"


def pins() -> dict[str, str]:
    out = {}
    for line in CONSTRAINTS.read_text().splitlines():
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s;#]+)", line)
        if m:
            out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def ignored() -> set[str]:
    if not IGNORE.exists():
        return set()
    return {line.split("#", 1)[0].strip() for line in IGNORE.read_text().splitlines() if line.split("#", 1)[0].strip()}


def online() -> int | None:
    """pip-audit's verdict (0 clean, 1 vulnerable), or None when its service could not audit the pins."""
    cmd = [sys.executable, "-m", "pip_audit", "-r", str(CONSTRAINTS), "--no-deps", "--disable-pip", "--strict",
           "--progress-spinner", "off", "-f", "json"]
    cmd += [a for vid in sorted(ignored()) for a in ("--ignore-vuln", vid)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if "could not be audited" in done.stderr or "Dependency not found" in done.stderr or not done.stdout.strip():
        reason = (done.stderr.strip().splitlines() or ["no answer"])[-1]
        print(f"pip-audit: 在线漏洞库不可用 (vulnerability service unreachable): {reason[:200]}")
        return None
    report = json.loads(done.stdout)
    bad = [(d["name"], d["version"], v["id"]) for d in report.get("dependencies", []) for v in d.get("vulns", [])]
    for name, version, vid in bad:
        print(f"  VULNERABLE {name}=={version}: {vid}")
    print(f"pip-audit (PyPI): {len(report.get('dependencies', []))} 个锁定依赖, {len(bad)} 个已知漏洞")
    return 1 if bad else 0


def offline() -> int:
    spec = importlib.util.find_spec("safety_db")
    if spec is None or spec.origin is None:
        print("离线漏洞库 safety-db 未安装 (pip install -c constraints.txt -e '.[test]')")
        return 2
    data = json.loads((Path(spec.origin).parent / "insecure_full.json").read_text())
    stamp = datetime.fromtimestamp(data.get("$meta", {}).get("timestamp", 0), timezone.utc).date()
    skip = ignored()
    locked = pins()
    bad = []
    for raw_name, advisories in data.items():
        name = canonicalize_name(raw_name)
        if name not in locked:
            continue
        try:
            version = Version(locked[name])
        except InvalidVersion:
            continue
        for adv in advisories:
            if adv.get("id") in skip or (adv.get("cve") or "") in skip:
                continue
            if any(version in SpecifierSet(s) for s in adv.get("specs", []) if s):
                bad.append((name, locked[name], adv.get("id"), adv.get("cve")))
    for name, version, vid, cve in bad:
        print(f"  VULNERABLE {name}=={version}: {vid} {cve or ''}")
    print(f"离线漏洞库 safety-db (数据日期 {stamp}): {len(locked)} 个锁定依赖, {len(bad)} 个已知漏洞; "
          "注意该库只含此日期之前公布的漏洞 (offline database, advisories up to that date only)")
    return 1 if bad else 0


def main() -> int:
    verdict = online()
    return offline() if verdict is None else verdict


if __name__ == "__main__":
    raise SystemExit(main())
