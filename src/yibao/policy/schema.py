"""The JSON Schema of a policy pack, generated from the pydantic models.

Shipped as ``policy/packs/policy-pack.schema.json`` so an editor (VS Code's YAML extension and
the like) checks a pack while it is typed: put
``# yaml-language-server: $schema=policy-pack.schema.json`` on the pack's first line.
A test keeps the shipped file identical to what the models generate.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from yibao.policy.model import PolicyPack

SCHEMA_FILE = "policy-pack.schema.json"


def pack_schema() -> dict:
    schema = PolicyPack.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
    }


def schema_text() -> str:
    return json.dumps(pack_schema(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def shipped_schema_path() -> Path:
    return Path(str(resources.files("yibao.policy") / "packs" / SCHEMA_FILE))
