"""PNG charts with Chinese text: the CJK font shipped inside a Python package, never a system path.

matplotlib's bundled DejaVu fonts have no Chinese glyphs, and a font installed on one machine is
missing on the next (CI runners, servers on a closed network). The `mplfonts` package (MIT) ships
Noto Sans CJK SC (SIL Open Font License) as a file inside the wheel; every chart registers that
file and draws with it, so Chinese renders the same everywhere the package is installed.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from importlib import resources
from pathlib import Path

FONT_FILE = "NotoSansCJKsc-Regular.otf"
FAMILY = "Noto Sans CJK SC"


@lru_cache(maxsize=1)
def cjk_font_path() -> Path:
    """The packaged font file, registered with matplotlib's font manager once per process."""
    from matplotlib import font_manager

    path = Path(str(resources.files("mplfonts") / "fonts" / FONT_FILE))
    font_manager.fontManager.addfont(str(path))
    return path


@contextmanager
def chinese():
    """Draw and save inside this block: the packaged CJK font first, DejaVu for anything it lacks."""
    import matplotlib

    cjk_font_path()
    with matplotlib.rc_context({"font.family": [FAMILY, "DejaVu Sans"], "axes.unicode_minus": False}):
        yield
