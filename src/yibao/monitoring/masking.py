"""Masking moved to :mod:`yibao.privacy` (one policy for logs, API, pages, exports); this path stays for old imports."""

from yibao.privacy import KEEP_HEAD, KEEP_TAIL, mask_certno, mask_certno_sql, mask_name, mask_name_sql

__all__ = ["KEEP_HEAD", "KEEP_TAIL", "mask_certno", "mask_certno_sql", "mask_name", "mask_name_sql"]
