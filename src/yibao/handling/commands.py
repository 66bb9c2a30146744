"""``yibao handling``: the service-item catalogue, deadlines in working days, statistics (docs/handling.md)."""

from __future__ import annotations

from typing import Optional

import typer


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    handling_app = typer.Typer(help="经办: 事项清单、办理时限(工作日)、办件统计 (service items, docs/handling.md)",
                               no_args_is_help=True)
    app.add_typer(handling_app, name="handling")

    @handling_app.command("items")
    def items(code: Optional[str] = typer.Argument(None, help="事项编码; 不写则列出全部")) -> None:
        """事项清单与办事指南 (the catalogue and each item's guide)."""
        from yibao.cli import fail, out
        from yibao.errors import YibaoError
        from yibao.handling.workflow import CHANNELS, STEP_NAMES, shipped_catalogue

        catalogue = shipped_catalogue()
        try:
            chosen = [catalogue.item(code)] if code else catalogue.items
        except YibaoError as exc:
            fail(exc)
            return
        for it in chosen:
            g = it.guide
            out.print(f"[bold]{it.code}[/] {it.name}: 承诺 {g.promised_days} 个工作日; "
                      f"{' → '.join(STEP_NAMES[s] for s in it.steps)}; 渠道 {'、'.join(CHANNELS[c] for c in g.channels)}")
            if code:
                out.print(f"  条件: {g.conditions}\n  材料: {'、'.join(g.materials)}\n  依据: {g.legal_basis}")
                for f in it.fields:
                    out.print(f"  字段 {f.name}({f.label}, {f.type}{', 必填' if f.required else ''})")

    @handling_app.command("deadline")
    def deadline(start: str = typer.Option(..., "--from", help="受理日 YYYY-MM-DD"),
                 days: int = typer.Option(..., "--days", help="承诺工作日数")) -> None:
        """办理时限: 受理日之后第 N 个工作日(按节假日与调休) (deadline in working days)."""
        from datetime import date

        from yibao.cli import fail, out
        from yibao.errors import Problem, YibaoError
        from yibao.handling.calendar import CalendarError, WorkCalendar

        try:
            try:
                day = date.fromisoformat(start)
            except ValueError:
                raise CalendarError(Problem("HDL031", "--from", f"日期应为 YYYY-MM-DD, 实际为 {start!r}")) from None
            due = WorkCalendar.shipped().add_working_days(day, days)
        except YibaoError as exc:
            fail(exc)
            return
        out.print(f"{day} 受理, {days} 个工作日: {due} 前办结")
