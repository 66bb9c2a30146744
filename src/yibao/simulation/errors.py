"""The simulation package's user error: a module of its own so that every stage (comparison, outputs)
imports it at the top without importing each other."""

from __future__ import annotations

from yibao.errors import YibaoError


class SimulationError(YibaoError):
    title = "政策模拟失败"
