"""Personal data (证件号 certno and 姓名 names): one policy for masking, logs and storage.

- **Masking (脱敏)** of lists, pages, API answers and exports that leave the office. One rule,
  written twice — in Python and as SQL for DuckDB — and a test checks that both agree:
  证件号码 keeps the first 6 characters (issuing area) and the last 4, every character between
  becomes ``*`` (10 characters or fewer: masked whole); 姓名 keeps the first character.
- **Logs** never carry a certno or a name: engines hide bound parameters
  (``hide_parameters=True``, :func:`yibao.store.database.make_engine`) and every log record is
  scrubbed when it is made (:func:`install_log_scrubbing`): 15- and 18-character ID numbers are
  masked, values given for a name field (``psn_name``, ``姓名``) are masked.
- **At rest** the certno is encrypted (AES-256-GCM, the person's psn_no as associated data, so a
  ciphertext moved to another person's row does not decrypt) with a key outside the database
  (:mod:`yibao.store.keys`), and found through a blind index: an HMAC-SHA256 of the number under a
  second key, so equal numbers match without the database holding anything that reveals them.

>>> mask_certno("370102199001011234"), mask_certno("12345678")
('370102********1234', '********')
>>> mask_name("张三"), mask_name("欧阳娜娜"), mask_name("王"), mask_name(None)
('张*', '欧***', '*', None)
>>> scrub("查询 370102199001011234 失败; psn_name='张三丰'")
"查询 370102********1234 失败; psn_name='张**'"
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
from functools import lru_cache

from yibao.errors import Problem
from yibao.store import keys

KEEP_HEAD = 6
KEEP_TAIL = 4


# --- masking ----------------------------------------------------------------------------------------


def mask_certno(certno: str | None) -> str | None:
    if certno is None:
        return None
    if len(certno) <= KEEP_HEAD + KEEP_TAIL:
        return "*" * len(certno)
    return certno[:KEEP_HEAD] + "*" * (len(certno) - KEEP_HEAD - KEEP_TAIL) + certno[-KEEP_TAIL:]


def mask_name(name: str | None) -> str | None:
    if name is None:
        return None
    if len(name) <= 1:
        return "*"
    return name[0] + "*" * (len(name) - 1)


def mask_certno_sql(column: str) -> str:
    keep = KEEP_HEAD + KEEP_TAIL
    return (f"CASE WHEN {column} IS NULL THEN NULL WHEN length({column}) <= {keep} THEN repeat('*', length({column})) "
            f"ELSE left({column}, {KEEP_HEAD}) || repeat('*', length({column}) - {keep}) || right({column}, {KEEP_TAIL}) END")


def mask_name_sql(column: str) -> str:
    return (f"CASE WHEN {column} IS NULL THEN NULL WHEN length({column}) <= 1 THEN '*' "
            f"ELSE left({column}, 1) || repeat('*', length({column}) - 1) END")


# --- logs -------------------------------------------------------------------------------------------

_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{6}(?:\d{11}[\dXx]|\d{9})(?![0-9A-Za-z])")
_NAME_VALUE = re.compile(r"""((?<![A-Za-z_])(?:psn_name|name|姓名)['"]?\s*[:=]\s*['"]?)([^'",;\s)}\]]+)""")


def scrub(text: str) -> str:
    """``text`` with every 18- or 15-character ID number and every value of a name field masked."""
    text = _ID_NUMBER.sub(lambda m: mask_certno(m.group(0)), text)
    return _NAME_VALUE.sub(lambda m: m.group(1) + mask_name(m.group(2)), text)


_installed = False


def install_log_scrubbing() -> None:
    """Scrub every log record as it is made, whatever logger or handler (idempotent): the message with its
    arguments and the text of an exception it carries (SQL errors, driver messages) are masked."""
    global _installed
    if _installed:
        return
    make = logging.getLogRecordFactory()

    def scrubbed(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logged as the logging module would
            return record
        record.msg, record.args = scrub(message), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(scrubbed)
    _installed = True


# --- at rest: encryption and blind index -------------------------------------------------------------------


def normalise(certno: str) -> str:
    return certno.strip().upper()


@lru_cache(maxsize=16)
def _derived(secret: bytes, purpose: bytes) -> bytes:
    return hmac.new(secret, b"yibao certno " + purpose, hashlib.sha256).digest()


@lru_cache(maxsize=16)
def _aead(secret: bytes):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(_derived(secret, b"encryption v1"))


def certno_index(certno: str, secret: bytes | None = None) -> str:
    """The blind index of a certno under one key (the active one unless given)."""
    if secret is None:
        ring = keys.load()
        secret = ring.certno[ring.certno_active]
    return hmac.new(_derived(secret, b"index v1"), normalise(certno).encode("utf-8"), hashlib.sha256).hexdigest()


def certno_indexes(certno: str) -> list[str]:
    """Its blind index under every key known (a lookup also finds rows not yet rotated to the active key)."""
    ring = keys.load()
    return [certno_index(certno, ring.certno[ring.certno_active])] + [
        certno_index(certno, s) for k, s in ring.certno.items() if k != ring.certno_active]


def encrypt_certno(certno: str, psn_no: str, key_id: str | None = None) -> str:
    """``<key id>:<base64url(nonce ‖ AES-GCM ciphertext)>``, bound to psn_no."""
    ring = keys.load()
    kid = key_id or ring.certno_active
    nonce = os.urandom(12)
    sealed = _aead(ring.certno[kid]).encrypt(nonce, normalise(certno).encode("utf-8"), psn_no.encode("utf-8"))
    return kid + ":" + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def decrypt_certno(token: str, psn_no: str) -> str:
    from cryptography.exceptions import InvalidTag

    ring = keys.load()
    kid, _, body = token.partition(":")
    secret = ring.certno.get(kid)
    if secret is None:
        raise keys.StoreKeyError(Problem("KEY003", keys.where(),
                                         f"证件号以密钥 {kid} 加密, 但密钥文件中没有该密钥(密钥文件与数据库不匹配)"))
    raw = base64.urlsafe_b64decode(body.encode("ascii"))
    try:
        return _aead(secret).decrypt(raw[:12], raw[12:], psn_no.encode("utf-8")).decode("utf-8")
    except InvalidTag:
        raise keys.StoreKeyError(Problem("KEY004", f"persons(psn_no={psn_no})",
                                         "证件号密文无法解密: 被改动, 或被从另一人的记录移来")) from None


def key_id_of(token: str) -> str:
    return token.partition(":")[0]
