"""Who is calling, and what they may do: institution API keys and staff users with roles.

Keys are never stored: ``YIBAO_API_KEYS_FILE`` names a JSON file of principals holding only the
SHA-256 of each key (``yibao service key`` writes one, mode 0600), and ``YIBAO_API_KEYS`` may add
principals inline, also by hash only (``name:role[:fixmedins_code]=sha256:<64 hex>;...``): a plaintext
key in the environment (readable in ``/proc/<pid>/environ``, process listings, crash reports) is
refused with AUT018. Keys are random 32-byte tokens,
so a plain hash is enough; comparison is constant-time. A request carries its key as
``Authorization: Bearer <key>`` or ``X-API-Key``.

Institutions act only on their own ``fixmedins_code``. Staff roles: 经办 ``clerk`` (every
settlement operation), 审核 ``reviewer`` and 复核 ``rechecker`` (review; 复核 may reverse),
``auditor`` (settlements and the audit log, identities masked), ``analyst`` (totals and
settlements, masked), ``admin`` (everything).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from yibao.errors import Problem
from yibao.identifiers import identifier_problem, text_problem
from yibao.privacy import mask_certno, mask_name
from yibao.service.errors import Forbidden, ServiceError, Unauthorized, problem

ROLES = {
    "institution": "定点医药机构",
    "clerk": "经办",
    "reviewer": "审核",
    "rechecker": "复核",
    "auditor": "稽核",
    "analyst": "分析",
    "admin": "管理员",
    "insured": "参保人",  # web self-service (issue #19): an insured person, bound to their own psn_no
}

# action → roles allowed (institutions additionally only for their own fixmedins_code)
PERMISSIONS = {
    "person.read": {"institution", "clerk", "reviewer", "rechecker", "admin"},
    "visit.write": {"institution", "clerk", "admin"},
    "settle": {"institution", "clerk", "admin"},
    "reverse": {"institution", "clerk", "rechecker", "admin"},
    "settlement.read": {"institution", "clerk", "reviewer", "rechecker", "auditor", "analyst", "admin"},
    "totals.read": {"institution", "clerk", "reviewer", "rechecker", "analyst", "admin"},
    "audit.read": {"auditor", "admin"},
    # 长期护理保险 (yibao.ltc)
    "ltc.assess": {"clerk", "reviewer", "admin"},
    "ltc.designate": {"admin"},
    "ltc.upload": {"institution", "clerk", "admin"},
    "ltc.settle": {"clerk", "admin"},
    "ltc.read": {"institution", "clerk", "reviewer", "rechecker", "auditor", "analyst", "admin"},
    # enrolment (参保与筹资, yibao.enrolment)
    "enrol.write": {"clerk", "admin"},
    "enrol.read": {"clerk", "reviewer", "rechecker", "auditor", "analyst", "admin"},
    # handling (经办 service items, issue 16)
    "handling.read": {"clerk", "reviewer", "rechecker", "auditor", "analyst", "admin", "institution"},
    "handling.apply": {"clerk", "institution", "admin"},
    "handling.accept": {"clerk", "admin"},
    "handling.review": {"reviewer", "admin"},
    "handling.recheck": {"rechecker", "admin"},
    "handling.clearing": {"clerk", "reviewer", "rechecker", "auditor", "analyst", "admin"},
    "handling.clearing_issue": {"rechecker", "admin"},
    "handling.topup_reverse": {"rechecker", "admin"},  # 撤销补差: it moves a year's accumulators back
    # web front door (issue #19): pages over the other domains, and the insured person's own records
    "self.read": {"insured"},
    "fund.read": {"analyst", "admin"},
    "simulation.run": {"analyst", "admin"},
    "policy.read": {"clerk", "reviewer", "rechecker", "auditor", "analyst", "admin"},
    "policy.upload": {"analyst", "admin"},
    "case.read": {"reviewer", "rechecker", "auditor", "admin"},
    "monitoring.read": {"clerk", "analyst", "admin"},
    "case.verify": {"reviewer", "admin"},  # 初审: assign, take into 核实
    "case.decide": {"rechecker", "admin"},  # 复核: 认定违规 / 排除 (never the user who verified it)
    "case.recover": {"auditor", "admin"},  # 追回 (never the user who confirmed it)
    # 两定机构 (yibao.institutions, issue 18): agreements, payments to institutions, catalogue and prices
    "institution.read": {"institution", "clerk", "reviewer", "rechecker", "auditor", "analyst", "admin"},
    "institution.apply": {"institution", "clerk", "admin"},
    "institution.evaluate": {"reviewer", "admin"},
    "institution.agree": {"rechecker", "admin"},
    "payment.apply": {"institution", "clerk", "admin"},
    "payment.review": {"reviewer", "admin"},
    "payment.approve": {"rechecker", "admin"},
    "payment.pay": {"clerk", "admin"},
    "catalogue.write": {"clerk", "admin"},
}
SEES_IDENTITY = {"institution", "clerk", "reviewer", "rechecker", "admin"}


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    fixmedins_code: str | None = None

    @property
    def sees_identity(self) -> bool:
        return self.role in SEES_IDENTITY

    def require(self, action: str, fixmedins_code: str | None = None) -> None:
        if self.role not in PERMISSIONS[action]:
            raise problem(Forbidden, "AUT003", "role",
                          f"角色 {ROLES.get(self.role, self.role)}({self.role}) 无权执行 {action}")
        self.require_own(fixmedins_code)

    def require_own(self, fixmedins_code: str | None) -> None:
        """An institution acts only for its own code (staff for any)."""
        if self.role == "institution" and fixmedins_code is not None and fixmedins_code != self.fixmedins_code:
            raise problem(Forbidden, "AUT004", "fixmedins_code",
                          f"机构 {self.fixmedins_code} 只能办理本机构业务, 不能办理机构 {fixmedins_code} 的业务")

    def identity(self, certno: str | None, psn_name: str | None) -> tuple[str | None, str | None]:
        """certno and name as this caller may see them (脱敏 for roles that do not need them)."""
        if self.sees_identity:
            return certno, psn_name
        return mask_certno(certno), mask_name(psn_name)


HASHED = "sha256:"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return "yb_" + secrets.token_urlsafe(32)


class KeyRing:
    def __init__(self, entries: list[tuple[str, Principal]]):
        self._entries = entries

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def from_env(cls) -> "KeyRing":
        entries: list[tuple[str, Principal]] = []
        path = os.environ.get("YIBAO_API_KEYS_FILE")
        if path:
            entries += [(digest, p) for digest, p in read_keys_file(Path(path))]
        for spec in filter(None, (s.strip() for s in os.environ.get("YIBAO_API_KEYS", "").split(";"))):
            who, _, key = spec.partition("=")
            parts = who.split(":")
            if len(parts) < 2 or not key:
                raise ServiceError(Problem("AUT010", "YIBAO_API_KEYS",
                                           f"格式应为 name:role[:fixmedins_code]=sha256:<密钥的 SHA-256>, 实际为 {who!r}"))
            principal = _principal(parts[0], parts[1], parts[2] if len(parts) > 2 else None, "YIBAO_API_KEYS")
            if not key.startswith(HASHED):
                raise ServiceError(Problem("AUT018", f"YIBAO_API_KEYS[{parts[0]}]",
                                           "环境变量中不再接受明文密钥: 请用 yibao service key 写入密钥文件"
                                           "(YIBAO_API_KEYS_FILE, 只存哈希), 或写成 sha256:<密钥的 64 位十六进制 SHA-256>"))
            digest = key[len(HASHED):].lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ServiceError(Problem("AUT017", "YIBAO_API_KEYS", f"{parts[0]}: sha256: 之后须为 64 位十六进制摘要"))
            entries.append((digest, principal))
        return cls(entries)

    def authenticate(self, key: str | None) -> Principal:
        if not key:
            raise problem(Unauthorized, "AUT001", "Authorization", "缺少 API 密钥(Authorization: Bearer <key> 或 X-API-Key)")
        digest = key_hash(key)
        for stored, principal in self._entries:
            if hmac.compare_digest(stored, digest):
                return principal
        raise problem(Unauthorized, "AUT002", "Authorization", "API 密钥无效")


NAME_MAX = 40  # the name is stored as the operator of what it does (settlements.opter)


def _principal(name: str, role: str, code: str | None, source: str) -> Principal:
    why = text_problem(name) if isinstance(name, str) else "不是文本"
    if why or not 1 <= len(name) <= NAME_MAX:
        raise ServiceError(Problem("AUT015", source, f"密钥名称须为 1 到 {NAME_MAX} 个字符的文本" + (f"({why})" if why else "")))
    if code is not None and (not isinstance(code, str) or not 1 <= len(code) <= 40 or identifier_problem(code)):
        raise ServiceError(Problem("AUT016", source, f"{name}: fixmedins_code 须为 1 到 40 个编码字符"))
    if role not in ROLES:
        raise ServiceError(Problem("AUT011", source, f"未知角色 {role!r}; 可用: {', '.join(ROLES)}"))
    if (role == "institution") != bool(code):
        raise ServiceError(Problem("AUT012", source, f"{name}: 机构密钥须且只有机构密钥须给出 fixmedins_code"))
    return Principal(name, role, code or None)


def read_keys_file(path: Path) -> list[tuple[str, Principal]]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    except (OSError, ValueError) as exc:
        raise ServiceError(Problem("AUT013", str(path), f"无法读取密钥文件: {exc}")) from None
    out = []
    for i, row in enumerate(rows):
        try:
            out.append((row["key_sha256"], _principal(row["name"], row["role"], row.get("fixmedins_code"),
                                                       f"{path}[{i}]")))
        except (KeyError, TypeError):
            raise ServiceError(Problem("AUT013", f"{path}[{i}]", "须含 name, role, key_sha256")) from None
    return out


def add_key(path: Path, name: str, role: str, fixmedins_code: str | None) -> str:
    """Append a principal with a fresh key to the keys file (hash only); return the key once."""
    _principal(name, role, fixmedins_code, str(path))
    read_keys_file(path)  # refuse to append to a file that is not a keys file
    rows = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    key = new_key()
    rows.append({"name": name, "role": role, "fixmedins_code": fixmedins_code, "key_sha256": key_hash(key)})
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.unlink(missing_ok=True)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as fh:
            fh.write(json.dumps(rows, ensure_ascii=False, indent=2))  # 0600 from creation: never readable by others
        tmp.replace(path)
    except OSError as exc:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        raise ServiceError(Problem("AUT014", "YIBAO_API_KEYS_FILE", f"无法写入密钥文件 {path}: {exc.strerror or exc}")) from None
    return key
