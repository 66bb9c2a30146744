"""Form input: read fields, turn the domain's coded problems into messages beside the fields.

A page keeps the user's input and re-renders its form with ``errors`` (field → message); a problem
whose path names no field of the form is shown at the top of the form. Nothing is written when a
form comes back with errors: the domain functions raise before their transaction commits.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import ValidationError

from yibao.errors import Problem, YibaoError, pydantic_problems

_INDEX = re.compile(r"\[\d+\]")


def field_of(path: str, fields: set[str]) -> str:
    """``input.data.medfee_sumamt`` → ``medfee_sumamt`` when the form has it, else ``form``."""
    last = _INDEX.sub("", path).rsplit(".", 1)[-1].rsplit(":", 1)[0]
    return last if last in fields else "form"


def errors_of(problems: list[Problem], fields: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in problems:
        key = field_of(p.path, fields)
        text = f"{p.message} [{p.code}]"
        out[key] = f"{out[key]}; {text}" if key in out else text
    return out


def problems_of(exc: Exception, code: str = "WEB010") -> list[Problem]:
    if isinstance(exc, YibaoError):
        return exc.problems
    if isinstance(exc, ValidationError):
        return pydantic_problems(exc, code)
    raise exc


def text(form, name: str, limit: int = 200) -> str:
    return str(form.get(name, "") or "").strip()[:limit]


def when(value: str, field: str, errors: dict[str, str], required: bool = True) -> datetime | None:
    """``2024-03-05T09:00`` (datetime-local) or ``2024-03-05 09:00[:00]``."""
    if not value:
        if required:
            errors[field] = "请填写时间 [WEB011]"
        return None
    try:
        return datetime.fromisoformat(value.replace(" ", "T"))
    except ValueError:
        errors[field] = f"时间格式应为 YYYY-MM-DD HH:MM, 实际为 {value!r} [WEB011]"
        return None
