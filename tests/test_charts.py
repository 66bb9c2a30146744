"""PNG charts draw Chinese with the font shipped in a package (no missing glyphs), years as whole numbers."""

from __future__ import annotations

import warnings
from pathlib import Path

from yibao.charts import FAMILY, cjk_font_path


def test_the_cjk_font_comes_from_a_package_not_the_system():
    path = cjk_font_path()
    assert "site-packages" in str(path) or "dist-packages" in str(path)
    assert path.name == "NotoSansCJKsc-Regular.otf" and path.stat().st_size > 1_000_000


def test_fund_charts_have_every_chinese_glyph_and_whole_years(tmp_path: Path):
    from matplotlib import font_manager

    from yibao.fund.report import _line_chart

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph … missing from font(s)" for boxes
        _line_chart({"城乡居民基本医疗保险 基线": ([2025, 2026, 2027], [9.5, 8.0, 6.2])}, "年度", "年末可支付月数",
                    tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 10_000
    assert font_manager.findfont(FAMILY, fallback_to_default=False) == str(cjk_font_path())
