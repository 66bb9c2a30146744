"""Errors a user sees: a code, the field it concerns, and what to do, in Chinese.

One class per failure kind (after OpenFisca's errors package). Each carries a list of
:class:`Problem` so a pack or request with several mistakes is reported whole, not one at a
time. The CLI and the API print these; nobody should ever see a stack trace instead.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    code: str  # e.g. POL010, REQ020, SET030
    path: str  # where: "basic[0].ratio_by_level.2" or "visit.items[3].pric"
    message: str  # Chinese, says what rule was broken

    def __str__(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"[{self.code}]{where}: {self.message}"


class YibaoError(Exception):
    """Base of every error meant for a user; ``problems`` holds the details."""

    title = "错误"

    def __init__(self, problems: list[Problem] | Problem, source: str = ""):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.title}" + (f" ({self.source})" if self.source else "")
        return "\n".join([head + ":"] + [f"  {p}" for p in self.problems])

    def to_dict(self) -> dict:
        return {
            "error": self.title,
            "source": self.source,
            "problems": [{"code": p.code, "path": p.path, "message": p.message} for p in self.problems],
        }


class PolicyError(YibaoError):
    """A policy pack that cannot be loaded: file, YAML, schema or cross-reference problems."""

    title = "政策包校验失败"


class RequestError(YibaoError):
    """A settlement request that is malformed or inconsistent with the pack."""

    title = "结算请求有误"


class SettlementError(YibaoError):
    """A request that is well-formed but cannot be settled under this pack (no rule applies...)."""

    title = "无法结算"


def pydantic_problems(exc, code: str, prefix: str = "") -> list[Problem]:
    """Translate a pydantic ValidationError into Chinese problems with dotted paths."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        path = format_loc(err.get("loc", ()), prefix)
        if path in seen:  # a union reports each branch; the first says enough
            continue
        seen.add(path)
        problems.append(Problem(code, path, translate(err)))
    return problems


def format_loc(loc, prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or "(" in str(part):
            continue  # union branch tags such as "list[Band]" or "function-after[...]"
        else:
            out += ("." if out else "") + str(part)
    return out


_MESSAGES = {
    "missing": "缺少必填字段",
    "extra_forbidden": "未知字段(拼写错误, 或本版本不支持此项)",
    "decimal_parsing": "必须是数字",
    "decimal_type": "必须是数字",
    "float_parsing": "必须是数字",
    "float_type": "必须是数字",
    "int_parsing": "必须是整数",
    "int_type": "必须是整数",
    "int_from_float": "必须是整数",
    "string_type": "必须是文本",
    "bool_parsing": "必须是 true 或 false",
    "bool_type": "必须是 true 或 false",
    "list_type": "必须是列表",
    "dict_type": "必须是映射(键: 值)",
    "model_type": "必须是映射(键: 值)",
    "model_attributes_type": "必须是映射(键: 值)",
    "date_parsing": "必须是日期, 格式 YYYY-MM-DD",
    "date_type": "必须是日期, 格式 YYYY-MM-DD",
    "date_from_datetime_parsing": "必须是日期, 格式 YYYY-MM-DD",
    "datetime_parsing": "必须是时间, 格式 YYYY-MM-DD HH:MM:SS",
    "datetime_type": "必须是时间, 格式 YYYY-MM-DD HH:MM:SS",
    "finite_number": "必须是有限数字",
    "json_invalid": "请求体不是合法的 JSON",
    "json_type": "请求体不是合法的 JSON",
    "enum": "取值不在允许的范围内",
    "uuid_parsing": "格式不符(应为 UUID)",
    "bytes_type": "必须是文本",
    "string_unicode": "不是合法的 Unicode 文本(含孤立的代理项, 如 \\ud800)",
}


def translate(err: dict) -> str:
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind == "value_error":
        msg = str(err.get("msg", ""))
        return msg.removeprefix("Value error, ")
    if kind == "literal_error":
        return f"取值必须为 {ctx.get('expected', '')} 之一, 实际为 {err.get('input')!r}"
    if kind == "string_pattern_mismatch":
        return f"格式不符(应匹配 {ctx.get('pattern', '')}), 实际为 {err.get('input')!r}"
    if kind in ("too_short", "too_long"):
        bound = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        return ("至少需要" if kind == "too_short" else "最多允许") + f" {bound} 项/字符"
    if kind in ("string_too_short", "string_too_long"):
        bound = ctx.get("min_length") if kind == "string_too_short" else ctx.get("max_length")
        return ("长度至少" if kind == "string_too_short" else "长度最多") + f" {bound} 个字符"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": "不得小于", "greater_than": "必须大于",
              "less_than_equal": "不得大于", "less_than": "必须小于"}[kind]
        bound = next(iter(ctx.values()), "")
        return f"{op} {bound}, 实际为 {err.get('input')!r}"
    if kind in _MESSAGES:
        quiet = ("missing", "extra_forbidden", "json_invalid", "json_type")
        suffix = "" if kind in quiet else f", 实际为 {err.get('input')!r}"
        return _MESSAGES[kind] + suffix
    return f"校验失败({kind}): {err.get('msg', '')}"  # a pydantic error type not yet translated
