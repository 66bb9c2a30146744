"""What the screening and its exports share: the package's user error, the burden measures' names and the
income percentage. A module of its own so that screening and export import it at the top, not each other."""

from __future__ import annotations

from decimal import Decimal

from yibao.errors import YibaoError
from yibao.money import pct

MEASURE_NAMES = {"inscp_psn_part": "政策范围内个人负担", "psn_part_amt": "个人负担总额"}


class MonitoringError(YibaoError):
    title = "返贫监测失败"


def income_pct(fen: int, income: int) -> Decimal:
    """An amount as a percentage of per-capita income, 2 decimals half-up.

    >>> income_pct(1_580_000, 4_000_000)
    Decimal('39.50')
    """
    return pct(fen, income) if income else Decimal(0)
