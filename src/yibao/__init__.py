"""yibao: 开源医疗保障系统 (open-source medical-security system)."""

__version__ = "0.1.0"
