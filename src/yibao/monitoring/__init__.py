"""Return-to-poverty monitoring (因病返贫致贫风险监测 / 高额医疗费用支出预警).

:func:`monitor` screens a settled year for persons whose annual burden crosses the thresholds
of the pack's ``monitoring`` section and lists them, masked, with the visits behind the burden
and whether 再救助 / 依申请救助 would apply; :func:`format_monitoring` renders it for the terminal.
See ``docs/monitoring.md``.
"""

from yibao.monitoring.assistance import AssistanceCheck, application_categories, income_share_tiers
from yibao.privacy import mask_certno, mask_name
from yibao.monitoring.render import format_monitoring
from yibao.monitoring.measures import MonitoringError
from yibao.monitoring.screen import FlaggedPerson, MonitoringResult, ThresholdInfo, monitor

__all__ = ["AssistanceCheck", "FlaggedPerson", "MonitoringError", "MonitoringResult", "ThresholdInfo",
           "application_categories", "format_monitoring", "income_share_tiers", "mask_certno", "mask_name",
           "monitor"]
