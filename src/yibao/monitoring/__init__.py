"""Return-to-poverty monitoring (因病返贫致贫风险监测 / 高额医疗费用支出预警).

:func:`yibao.monitoring.screen.monitor` screens a settled year for persons whose annual burden crosses the thresholds
of the pack's ``monitoring`` section and lists them, masked, with the visits behind the burden
and whether 再救助 / 依申请救助 would apply; :func:`yibao.monitoring.render.format_monitoring` renders it for the terminal.
See ``docs/monitoring.md``.
"""
