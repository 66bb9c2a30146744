"""What an identifier or a text field may contain: one allowed-character rule for every door.

An **identifier** (msgid, fixmedins_code, psn_no, mdtrt_id, setl_id, feedetl_sn, med_list_codg, dise_codg,
证件号 ...) consists of ASCII letters ``A–Z a–z``, digits ``0–9`` and the five marks ``. _ - + *`` and ``/``
(catalogue codes ``SD-EX-M001``, ICD codes ``A17.0+G01*``, ``I25.100``). Nothing else: no space, no NUL or other
control character, no direction override (U+202E), no zero-width character, no markup (``< > & " '``), no
non-ASCII look-alike — so a code stored, logged, compared or shown is the code a person reads.

**Text** (names, operator names) may be any Unicode letter, digit, mark, punctuation, symbol or space, but never
a control (``Cc``: NUL, ...), format (``Cf``: bidi overrides, zero-width), surrogate (``Cs``: not a character at
all; a JSON ``"\\ud800"`` decodes to one), private-use (``Co``) or unassigned (``Cn``) code point.

>>> identifier_problem("SD-EX-M001"), identifier_problem("A17.0+G01*")
(None, None)
>>> identifier_problem("F1\\u202e")
'第 3 个字符 U+202E 不允许: 编码只能由字母 A–Z a–z、数字 0–9 与 . _ - + * / 组成'
>>> text_problem("张三"), text_problem("a\\x00b")
(None, '第 2 个字符 U+0000 不允许(控制字符)')
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

IDENTIFIER_CHARS = "字母 A–Z a–z、数字 0–9 与 . _ - + * /"
_IDENTIFIER = re.compile(r"[0-9A-Za-z._+*/\-]*")
_REFUSED = {"Cc": "控制字符", "Cf": "格式字符(方向控制或零宽字符)", "Cs": "代理项, 不是字符",
            "Co": "私用区字符", "Cn": "未分配的码位"}


def identifier_problem(value: str) -> str | None:
    """Why ``value`` is not an identifier (the first character that breaks the rule), or None."""
    if _IDENTIFIER.fullmatch(value):
        return None
    at = next(i for i, ch in enumerate(value) if not _IDENTIFIER.fullmatch(ch))
    return f"第 {at + 1} 个字符 U+{ord(value[at]):04X} 不允许: 编码只能由{IDENTIFIER_CHARS} 组成"


def text_problem(value: str) -> str | None:
    """Why ``value`` is not acceptable text (a control, format, surrogate, private or unassigned code point)."""
    if value.isascii() and value.isprintable():
        return None  # the common case, without a per-character look-up
    for i, ch in enumerate(value):
        kind = _REFUSED.get(unicodedata.category(ch))
        if kind is not None:
            return f"第 {i + 1} 个字符 U+{ord(ch):04X} 不允许({kind})"
    return None


def _identifier(value: str) -> str:
    problem = identifier_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _text(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]
Text = Annotated[str, AfterValidator(_text)]


def _chrgitm_type(value: str) -> str:
    if not re.fullmatch(r"[0-9]{2}", value):
        raise ValueError(f"医疗收费项目类别 med_chrgitm_type 须为两位数字代码(如 03 检查费、09 西药费), 实际为 {value!r}")
    return value


# 医疗收费项目类别 (national two-digit code): the category the supervision rules judge a line by
ChrgitmType = Annotated[str, AfterValidator(_chrgitm_type)]
