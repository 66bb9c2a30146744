"""Masking of ID numbers and names on lists that leave the insurance office (脱敏).

One rule, written twice — as SQL for DuckDB (the list is built in the engine) and in Python (for
single values and tests) — and a test checks that both agree:

- 证件号码: keep the first 6 characters (the issuing area) and the last 4, every character in
  between becomes ``*``, so an 18-digit number keeps its length; numbers of 10 characters or
  fewer are masked whole (too short to keep anything safely);
- 姓名: keep the first character (the surname, usually), every further character becomes ``*``;
  a one-character name becomes ``*``.

>>> mask_certno("370102199001011234"), mask_certno("12345678")
('370102********1234', '********')
>>> mask_name("张三"), mask_name("欧阳娜娜"), mask_name("王"), mask_name(None)
('张*', '欧***', '*', None)
"""

from __future__ import annotations

KEEP_HEAD = 6
KEEP_TAIL = 4


def mask_certno(certno: str | None) -> str | None:
    if certno is None:
        return None
    if len(certno) <= KEEP_HEAD + KEEP_TAIL:
        return "*" * len(certno)
    return certno[:KEEP_HEAD] + "*" * (len(certno) - KEEP_HEAD - KEEP_TAIL) + certno[-KEEP_TAIL:]


def mask_name(name: str | None) -> str | None:
    if name is None:
        return None
    if len(name) <= 1:
        return "*"
    return name[0] + "*" * (len(name) - 1)


def mask_certno_sql(column: str) -> str:
    keep = KEEP_HEAD + KEEP_TAIL
    return (f"CASE WHEN {column} IS NULL THEN NULL WHEN length({column}) <= {keep} THEN repeat('*', length({column})) "
            f"ELSE left({column}, {KEEP_HEAD}) || repeat('*', length({column}) - {keep}) || right({column}, {KEEP_TAIL}) END")


def mask_name_sql(column: str) -> str:
    return (f"CASE WHEN {column} IS NULL THEN NULL WHEN length({column}) <= 1 THEN '*' "
            f"ELSE left({column}, 1) || repeat('*', length({column}) - 1) END")
