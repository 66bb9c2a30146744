"""Claims data (理赔数据): the tables every batch command reads, and their checks.

The contract is :mod:`yibao.claims.schema`; ``docs/claims-schema.md`` explains it for people
preparing a region's extract.
"""
