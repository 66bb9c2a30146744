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
    """A whole pack; or, with ``extends:``, only its overrides (top-level names checked).

    An extending pack states a few numbers, so the editor checks it loosely; ``yibao policy
    check`` validates the merged pack against the full models.
    """
    schema = PolicyPack.model_json_schema(mode="validation")
    whole = {key: schema.pop(key) for key in ("properties", "required", "additionalProperties")}
    extends = {"type": "string", "minLength": 1, "title": "Extends",
               "description": "继承的政策包: 内置政策包名称或相对本文件的路径; 本文件只写不同之处"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "if": {"required": ["extends"]},
        "then": {"properties": {"extends": extends},
                 "propertyNames": {"enum": sorted(whole["properties"]) + ["extends"]}},
        "else": whole,
    }


def schema_text() -> str:
    return json.dumps(pack_schema(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def shipped_schema_path() -> Path:
    return Path(str(resources.files("yibao.policy") / "packs" / SCHEMA_FILE))
