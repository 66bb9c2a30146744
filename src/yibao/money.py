"""Money is integer fen, rates are exact decimals; this module is the only door between them.

Yuan appear only at the edges (YAML packs, JSON requests, printed statements). Inside, every
amount is an ``int`` of fen and every product of an amount and a rate is rounded half-up to the
fen by :func:`round_half_up`, never by float arithmetic.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

FEN_PER_YUAN = 100


def yuan_to_fen(value: Decimal | int | str) -> int:
    """Convert an exact yuan amount to fen; refuses anything finer than a fen.

    >>> yuan_to_fen("20000.00"), yuan_to_fen(Decimal("0.5")), yuan_to_fen(3)
    (2000000, 50, 300)
    >>> yuan_to_fen("inf")
    Traceback (most recent call last):
    ValueError: 不是有限的金额: 'inf'
    """
    try:
        dec = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"不是有效金额: {value!r}") from exc
    if not dec.is_finite():
        raise ValueError(f"不是有限的金额: {value!r}")
    try:
        fen = dec * FEN_PER_YUAN
        exact = fen == fen.to_integral_value()
    except ArithmeticError as exc:  # an exponent beyond the decimal context (e.g. 1e999999999)
        raise ValueError(f"金额超出范围: {value!r}") from exc
    if not exact:
        raise ValueError(f"金额精确到分(最多两位小数): {value}")
    return int(fen)


def fen_to_yuan(fen: int) -> Decimal:
    """Yuan with exactly two decimals, for output.

    >>> fen_to_yuan(1555500), fen_to_yuan(5)
    (Decimal('15555.00'), Decimal('0.05'))
    """
    return (Decimal(fen) / FEN_PER_YUAN).quantize(Decimal("0.01"))


def format_yuan(fen: int) -> str:
    """Human-readable yuan with thousands separators, e.g. for statements.

    >>> format_yuan(1555500)
    '15,555.00'
    """
    return f"{fen_to_yuan(fen):,.2f}"


def round_half_up(value: Decimal) -> int:
    """Round an exact decimal amount of fen half-up to an integer number of fen.

    >>> round_half_up(Decimal("206150.5")), round_half_up(Decimal("0.49"))
    (206151, 0)
    """
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


@lru_cache(maxsize=65536)
def rate_parts(rate: Decimal) -> tuple[int, int]:
    """An exact decimal rate as (numerator, 10**k) so hot loops can stay in integers.

    >>> rate_parts(Decimal("0.85")), rate_parts(Decimal("1"))
    ((85, 100), (1, 1))
    """
    sign, digits, exponent = rate.normalize().as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"不是有限小数: {rate}")
    numerator = int("".join(map(str, digits)) or "0")
    if exponent >= 0:
        return (-1 if sign else 1) * numerator * 10**exponent, 1
    return (-1 if sign else 1) * numerator, 10 ** (-exponent)


def mul_rate(amount_fen: int, rate: Decimal) -> int:
    """amount × rate, rounded half-up to the fen (amount ≥ 0, rate ≥ 0).

    >>> mul_rate(294500, Decimal("0.7")), mul_rate(1, Decimal("0.5"))
    (206150, 1)
    """
    num, den = rate_parts(rate)
    return (2 * amount_fen * num + den) // (2 * den)


def pct(change: int | Decimal, base: int | Decimal) -> Decimal | None:
    """change / base in percent, 2 decimals half-up; None when the base is 0 (simulation changes, burden shares)."""
    if base == 0:
        return None
    return (Decimal(change) * 100 / Decimal(base)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
