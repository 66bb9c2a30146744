"""What every report writer shares: files appear whole or not at all, and a table of where they went."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from rich.table import Table

from yibao.errors import YibaoError


def publish(out_dir: Path, build: Callable[[Path], dict[str, Path]],
            error: Callable[[str], YibaoError]) -> dict[str, Path]:
    """Run ``build`` in a temporary folder inside ``out_dir``, then move its files into place.

    If anything fails, ``out_dir`` gets none of the files; an OSError becomes ``error(message)``.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    except OSError as exc:
        raise error(f"无法写入 {out_dir}: {exc}") from None
    try:
        final = {}
        for key, path in build(tmp).items():
            target = out_dir / path.name
            os.replace(path, target)
            final[key] = target
        return final
    except OSError as exc:
        raise error(f"无法写入 {out_dir}: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def outputs_table(outputs: dict[str, Path]) -> Table:
    files = Table(title="输出文件 Outputs", title_justify="left")
    files.add_column("内容 content")
    files.add_column("文件 file")
    for key, path in outputs.items():
        files.add_row(key, str(path))
    return files
