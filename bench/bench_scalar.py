"""Scalar settlement benchmark: ``python bench/bench_scalar.py [--visits N] [--items K]``.

The same as ``yibao bench scalar``; see :mod:`yibao.bench.scalar` for what is timed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

try:
    from yibao.bench.scalar import format_report, run
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from yibao.bench.scalar import format_report, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="单次结算引擎性能基准 (scalar settlement benchmark, one core)")
    parser.add_argument("--visits", type=int, default=20000, help="就诊数 visits (default 20000)")
    parser.add_argument("--items", type=int, default=30, help="每次就诊费用明细条数 items per visit (default 30)")
    parser.add_argument("--seed", type=int, default=1, help="随机种子 seed (default 1)")
    parser.add_argument("--repeat", type=int, default=3, help="每项计时取最好的次数 best of N runs (default 3)")
    parser.add_argument("--json", action="store_true", help="输出 JSON 而非报告 (print the figures as JSON)")
    args = parser.parse_args(argv)
    figures = run(visits=args.visits, items_per_visit=args.items, seed=args.seed, repeat=args.repeat)
    print(json.dumps(figures, ensure_ascii=False, indent=2) if args.json else format_report(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
