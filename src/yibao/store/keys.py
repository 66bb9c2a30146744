"""The store's secret keys, kept outside the database: the chain key and the 证件号 keys.

One small JSON file (or the same JSON in an environment variable, for secret managers):

- ``chain``: the key of the hash chains (:mod:`yibao.store.chain`). The chains are keyed
  (HMAC), so someone who can write the database but not read this key cannot forge a chain;
- ``certno``: the keys that encrypt 证件号 at rest and key their blind index
  (:mod:`yibao.privacy`), by key id, with ``certno_active`` naming the one new rows use. Older
  ids stay after ``yibao db rotate-key`` so backups made before it can still be read.

Where: ``YIBAO_STORE_KEYS`` (the JSON itself) if set, else the file ``YIBAO_STORE_KEYS_FILE``,
else ``$YIBAO_DATA_DIR/store-keys.json``. The file is created (mode 0600) by the migration that
first encrypts data (``yibao db upgrade``), never silently at run time: a store whose keys are
missing must fail loudly (KEY001), not start writing under a new key. In production put the file
outside the data directory and outside the database's backups (docs/security.md).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from yibao.errors import Problem, YibaoError

ENV_JSON = "YIBAO_STORE_KEYS"
ENV_FILE = "YIBAO_STORE_KEYS_FILE"


class StoreKeyError(YibaoError):
    title = "存储密钥错误"


@dataclass(frozen=True)
class StoreKeys:
    chain: bytes
    certno: dict[str, bytes]  # key id → 32-byte secret
    certno_active: str
    source: str

    def to_json(self) -> str:
        return json.dumps({"version": 1, "chain": _b64(self.chain), "certno_active": self.certno_active,
                           "certno": {k: _b64(v) for k, v in self.certno.items()}}, indent=2)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def keys_path() -> Path:
    given = os.environ.get(ENV_FILE)
    if given:
        return Path(given)
    return Path(os.environ.get("YIBAO_DATA_DIR", "yibao-data")) / "store-keys.json"


def where() -> str:
    """Where the keys come from, for messages (never the keys)."""
    return f"环境变量 {ENV_JSON}" if os.environ.get(ENV_JSON) else str(keys_path())


_cache: dict[tuple, StoreKeys] = {}
_checked: list = [0.0, None, None]  # when the source was last looked at, what it was, its keys
RECHECK_SECONDS = 1.0


def load() -> StoreKeys:
    """The keys, read once per source; the source is looked at again at most once a second (a settlement
    hashes several rows: a stat per row would cost more than the hashes), so a rotated file is seen within a
    second by running processes."""
    now = time.monotonic()
    source = (os.environ.get(ENV_JSON), os.environ.get(ENV_FILE), os.environ.get("YIBAO_DATA_DIR"))
    if _checked[2] is not None and _checked[1] == source and now - _checked[0] < RECHECK_SECONDS:
        return _checked[2]
    found = _load()
    _checked[:] = [now, source, found]
    return found


def _load() -> StoreKeys:
    text = os.environ.get(ENV_JSON)
    if text:
        tag: tuple = ("env", text)
    else:
        path = keys_path()
        try:
            st = path.stat()
        except OSError:
            raise StoreKeyError(Problem("KEY001", str(path),
                                    f"找不到存储密钥文件 {path}: 请先运行 yibao db upgrade(首次建库时生成), "
                                    f"或用 {ENV_FILE}/{ENV_JSON} 指向已有密钥; 切勿为已有数据的库另生成新密钥")) from None
        tag = ("file", str(path), st.st_mtime_ns, st.st_size)
    found = _cache.get(tag)
    if found is None:
        if tag[0] == "file":
            text = Path(tag[1]).read_text(encoding="utf-8")
        found = _parse(text or "", where())
        _cache.clear()
        _cache[tag] = found
    return found


def _parse(text: str, source: str) -> StoreKeys:
    try:
        data = json.loads(text)
        chain = base64.b64decode(data["chain"], validate=True)
        certno = {str(k): base64.b64decode(v, validate=True) for k, v in data["certno"].items()}
        active = str(data["certno_active"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise StoreKeyError(Problem("KEY002", source, "存储密钥格式无效: 须为含 chain, certno, certno_active 的 JSON")) from None
    if len(chain) != 32 or active not in certno or any(len(v) != 32 for v in certno.values()):
        raise StoreKeyError(Problem("KEY002", source, "存储密钥无效: 每个密钥须为 32 字节, certno_active 须是 certno 中的一个"))
    return StoreKeys(chain, certno, active, source)


def generate() -> StoreKeys:
    return StoreKeys(secrets.token_bytes(32), {"k1": secrets.token_bytes(32)}, "k1", "new")


def write(keys: StoreKeys, path: Path | None = None) -> Path:
    """Write the keys file atomically, mode 0600 from its creation (never readable by others)."""
    path = path or keys_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(keys.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _cache.clear()
    _checked[2] = None  # this process sees its own write at once
    return path


def ensure() -> StoreKeys:
    """The keys, creating the file when there is none (only the migration that starts encrypting calls this)."""
    if os.environ.get(ENV_JSON) or keys_path().exists():
        return load()
    write(generate())
    return load()


@contextlib.contextmanager
def throwaway() -> Iterator[Path]:
    """Keys for a throwaway store (benchmarks, demos on a temp database): a temp keys file for the block,
    inherited by child processes, removed afterwards; the caller's own keys are left alone."""
    saved = {k: os.environ.get(k) for k in (ENV_JSON, ENV_FILE)}
    with tempfile.TemporaryDirectory(prefix="yibao-keys-") as tmp:
        os.environ.pop(ENV_JSON, None)
        os.environ[ENV_FILE] = str(Path(tmp) / "store-keys.json")
        try:
            yield Path(os.environ[ENV_FILE])
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
