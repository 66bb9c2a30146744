"""Synthetic regions (合成地区数据): a seeded population and a year of claims.

>>> from yibao.policy.loader import resolve_pack
>>> tables = generate(resolve_pack("shandong-2024"), persons=200, seed=7)
>>> sorted(tables), tables["persons"].num_rows
(['fee_items', 'institutions', 'persons', 'visits'], 200)
"""

from yibao.synth.region import BLOCK_PERSONS, SynthError, blocks, generate, generate_to, window_for, write_region

__all__ = ["BLOCK_PERSONS", "SynthError", "blocks", "generate", "generate_to", "window_for", "write_region"]
