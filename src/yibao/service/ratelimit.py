"""Lock-out after failed authentication, and a settlement rate per institution: ``429`` with ``Retry-After``.

- **Failed authentication** (no key, a wrong key) is counted per source address and per presented key: after
  ``auth_failures`` failures within ``auth_window`` seconds that address (or key) is locked out for
  ``lockout`` seconds — every request from it is answered ``429`` (``AUT030``) without looking at the key,
  so guessing keys costs the guesser time, not the service. A success does not reset the count.
- **Settlements** (2207/2304, REST settle) are limited per institution (staff: per user) to ``settle_rate``
  a second with bursts up to ``settle_burst`` (a token bucket): past it ``429`` (``SET070``), nothing done.

Counters live in the process (each ``--workers`` process keeps its own: with N workers the effective limits
are up to N times these). The clock is injectable, so tests count instead of sleeping. Configured by
``YIBAO_AUTH_FAILURES``, ``YIBAO_AUTH_WINDOW``, ``YIBAO_LOCKOUT_SECONDS``, ``YIBAO_SETTLE_RATE``,
``YIBAO_SETTLE_BURST`` (``0`` switches a limit off).

>>> now = [0.0]
>>> g = Guard(GuardConfig(auth_failures=2, auth_window=60, lockout=300), clock=lambda: now[0])
>>> g.failed("10.0.0.9", "k1"); g.failed("10.0.0.9", "k2")
>>> g.refuse_locked("10.0.0.9", "k3")
Traceback (most recent call last):
yibao.service.errors.TooManyRequests: 请求过于频繁:
  [AUT030] Authorization: 认证失败次数过多, 来源 10.0.0.9 已被锁定, 请 300 秒后再试
>>> now[0] = 301.0; g.refuse_locked("10.0.0.9", "k3")  # the lock-out has passed
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, fields
from typing import Callable

from yibao.errors import Problem, YibaoError
from yibao.service.errors import TooManyRequests

MAX_TRACKED = 100_000  # addresses/keys remembered at once; beyond it the expired ones are dropped first


@dataclass(frozen=True)
class GuardConfig:
    auth_failures: int = 10  # failed authentications allowed per address / key within the window; 0: no lock-out
    auth_window: float = 60.0
    lockout: float = 300.0
    settle_rate: float = 50.0  # settlements a second per institution and process; 0: unlimited
    settle_burst: int = 100

    ENV = {"auth_failures": "YIBAO_AUTH_FAILURES", "auth_window": "YIBAO_AUTH_WINDOW",
           "lockout": "YIBAO_LOCKOUT_SECONDS", "settle_rate": "YIBAO_SETTLE_RATE",
           "settle_burst": "YIBAO_SETTLE_BURST"}

    @classmethod
    def from_env(cls) -> "GuardConfig":
        values = {}
        for f in fields(cls):
            name = cls.ENV[f.name]
            text = os.environ.get(name, "").strip()
            if not text:
                continue
            try:
                value = int(text) if f.type in (int, "int") else float(text)
                if value < 0 or not math.isfinite(value):
                    raise ValueError(text)
            except ValueError:
                raise YibaoError(Problem("SRV005", name, f"应为非负数, 实际为 {text!r}")) from None
            values[f.name] = value
        return cls(**values)


@dataclass
class _Failures:
    window_start: float
    count: int
    locked_until: float = 0.0


@dataclass
class _Bucket:
    tokens: float
    at: float


class Guard:
    def __init__(self, config: GuardConfig | None = None, clock: Callable[[], float] = time.monotonic):
        self.config = config or GuardConfig()
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, _Failures] = {}
        self._buckets: dict[str, _Bucket] = {}

    def refuse_locked(self, address: str, key_id: str | None) -> None:
        """:class:`TooManyRequests` while the address or the presented key is locked out."""
        if not self.config.auth_failures:
            return
        now = self.clock()
        with self._lock:
            for who, label in ((f"addr:{address}", f"来源 {address}"), (f"key:{key_id}", "该密钥")):
                f = self._failures.get(who)
                if f is not None and f.locked_until > now:
                    wait = math.ceil(f.locked_until - now)
                    raise TooManyRequests(Problem("AUT030", "Authorization",
                                                  f"认证失败次数过多, {label} 已被锁定, 请 {wait} 秒后再试"), wait)
                if key_id is None:
                    break

    def failed(self, address: str, key_id: str | None) -> None:
        """Count one failed authentication against the address and the presented key."""
        c = self.config
        if not c.auth_failures:
            return
        now = self.clock()
        with self._lock:
            if len(self._failures) >= MAX_TRACKED:
                self._failures = {k: f for k, f in self._failures.items()
                                  if f.locked_until > now or now - f.window_start < c.auth_window}
            for who in (f"addr:{address}",) + ((f"key:{key_id}",) if key_id else ()):
                f = self._failures.get(who)
                if f is None or now - f.window_start >= c.auth_window:
                    f = self._failures[who] = _Failures(now, 0, f.locked_until if f else 0.0)
                f.count += 1
                if f.count >= c.auth_failures:
                    f.locked_until = now + c.lockout
                    f.window_start, f.count = now, 0

    def settlement(self, who: str) -> None:
        """Take one settlement from ``who``'s bucket, or :class:`TooManyRequests` (nothing is done)."""
        c = self.config
        if not c.settle_rate:
            return
        now = self.clock()
        with self._lock:
            if len(self._buckets) >= MAX_TRACKED:
                self._buckets.clear()  # a full bucket is the same as a forgotten one
            burst = max(1.0, float(c.settle_burst))
            b = self._buckets.get(who)
            if b is None:
                b = self._buckets[who] = _Bucket(burst, now)
            b.tokens = min(burst, b.tokens + (now - b.at) * c.settle_rate)
            b.at = now
            if b.tokens < 1:
                wait = max(1, math.ceil((1 - b.tokens) / c.settle_rate))
                raise TooManyRequests(Problem("SET070", "fixmedins_code",
                                              f"{who} 结算过于频繁(每秒最多 {c.settle_rate:g} 笔), 请 {wait} 秒后再试"),
                                      wait)
            b.tokens -= 1
