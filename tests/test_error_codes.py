"""Every error code the source can raise is explained somewhere in docs/ (docs/errors.md indexes them)."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = re.compile(r"[A-Z]{2,4}[0-9]{3}")


def source_codes() -> dict[str, str]:
    """Code → first file that uses it, from every string constant in the package."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "src" / "yibao").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE.fullmatch(node.value):
                found.setdefault(node.value, str(path.relative_to(ROOT)))
    return found


def test_the_scan_finds_the_codes_it_should():
    codes = source_codes()
    assert {"POL001", "SET040", "REG001", "FSI001", "SVC500"} <= set(codes)
    assert len(codes) > 150


def test_every_error_code_is_documented():
    docs = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    missing = {code: where for code, where in source_codes().items() if code not in docs}
    assert not missing, f"undocumented error codes (add them to the domain's doc or docs/errors.md): {missing}"
