"""Portable SQL that turns claims tables (yuan, platform field names) into the engine's input.

Two steps, both plain SQL so DuckDB and Spark run the same text:
- :func:`classification_query`: fee lines → the four classified amounts per visit, in fen,
  exactly as :mod:`yibao.settlement.classify` does it line by line;
- :func:`visits_in_query`: visits ⋈ persons ⋈ classified amounts → ``visits_in``, the input of the
  compiled kernel (:mod:`yibao.batch.stream`).
The pack's catalogue and charge classes travel as two small tables (:func:`pack_tables`).
"""

from __future__ import annotations

import pyarrow as pa

from yibao.handling.effects import certified_visits_sql, filed_visits_sql, offsite_status_sql, settled_med_type_sql
from yibao.policy.compiled import CompiledPack
from yibao.sql import ident, q

RATE_DEN = 10_000  # per-line ratios and counts are decimals with at most 4 places


def pack_tables(pack: CompiledPack) -> dict[str, pa.Table]:
    classes = pack.classes
    catalog = pack.catalog
    return {
        "pack_classes": pa.table({
            "chrgitm_lv": list(classes),
            "in_scope": [c.in_scope for c in classes.values()],
            "pre_num": pa.array([c.pre_num for c in classes.values()], pa.int64()),
            "pre_den": pa.array([c.pre_den for c in classes.values()], pa.int64()),
            "full_pay": pa.array([c.full for c in classes.values()], pa.bool_()),
        }),
        "pack_catalog": pa.table({
            "med_list_codg": pa.array(list(catalog), pa.string()),
            "cat_lv": pa.array([c.chrgitm_lv for c in catalog.values()], pa.string()),
            "cat_in_scope": pa.array([c.in_scope for c in catalog.values()], pa.bool_()),
            "cat_pre_num": pa.array([c.pre_num for c in catalog.values()], pa.int64()),
            "cat_pre_den": pa.array([c.pre_den for c in catalog.values()], pa.int64()),
            "cat_cap": pa.array([c.price_cap for c in catalog.values()], pa.int64()),
            "cat_full_pay": pa.array([c.full for c in catalog.values()], pa.bool_()),
        }),
    }


def fen(column: str) -> str:
    """A decimal(16,2) yuan column as exact integer fen."""
    return f"CAST({column} * 100 AS BIGINT)"


def classification_query(items: str = "fee_items") -> str:
    """Per visit: fulamt, overlmt, pre, inscp (fen), plus ``unclassified`` lines to report and ``inscp_full``,
    the part of inscp in classes without co-share (``coshare: false``)."""
    # a line's own class wins over the catalogue's; the catalogue's price cap for the code stays
    own = "(i.chrgitm_lv IS NOT NULL AND (c.cat_lv IS NULL OR c.cat_lv <> i.chrgitm_lv))"
    return f"""
WITH lines AS (
  SELECT i.mdtrt_id,
         {fen('i.det_item_fee_sumamt')} AS fee,
         CAST(i.cnt * {RATE_DEN} AS BIGINT) AS cnt_num,
         CASE WHEN {own} THEN k.in_scope ELSE c.cat_in_scope END AS in_scope,
         CASE WHEN {own} THEN k.full_pay ELSE c.cat_full_pay END AS full_cls,
         CASE WHEN i.preselfpay_ratio IS NOT NULL THEN CAST(i.preselfpay_ratio * {RATE_DEN} AS BIGINT)
              WHEN {own} THEN k.pre_num ELSE c.cat_pre_num END AS pre_num,
         CASE WHEN i.preselfpay_ratio IS NOT NULL THEN {RATE_DEN}
              WHEN {own} THEN k.pre_den ELSE c.cat_pre_den END AS pre_den,
         c.cat_cap AS cap
  FROM {items} i
  LEFT JOIN pack_catalog c ON c.med_list_codg = i.med_list_codg
  LEFT JOIN pack_classes k ON k.chrgitm_lv = i.chrgitm_lv
), capped AS (
  SELECT *,
         CASE WHEN cap IS NULL THEN NULL ELSE (2 * cap * cnt_num + {RATE_DEN}) // {2 * RATE_DEN} END AS lim
  FROM lines
), split AS (
  SELECT *,
         CASE WHEN in_scope AND lim IS NOT NULL AND fee > lim THEN fee - lim ELSE 0 END AS ovl
  FROM capped
), shares AS (
  SELECT *,
         CASE WHEN in_scope AND pre_num > 0 THEN (2 * (fee - ovl) * pre_num + pre_den) // (2 * pre_den) ELSE 0 END AS share
  FROM split
)
SELECT mdtrt_id,
       CAST(SUM(CASE WHEN in_scope THEN 0 ELSE fee END) AS BIGINT) AS fulamt,
       CAST(SUM(ovl) AS BIGINT) AS overlmt,
       CAST(SUM(share) AS BIGINT) AS pre,
       CAST(SUM(CASE WHEN in_scope THEN fee - ovl - share ELSE 0 END) AS BIGINT) AS inscp,
       CAST(SUM(CASE WHEN in_scope IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS unclassified,
       COUNT(*) AS item_count,
       CAST(SUM(CASE WHEN in_scope AND full_cls THEN fee - ovl - share ELSE 0 END) AS BIGINT) AS inscp_full
FROM shares GROUP BY mdtrt_id
"""


# every insutype of the persons with every (med_type, dise_codg, level) of the visits: a superset of the
# combinations the claims' visits have (what the stream needs, yibao.batch.stream.register_program), read without
# joining visits and persons (ten million visits: 0.12-0.14 s against 0.85-0.91 s for CLAIMS_COMBOS; where 经办
# facts change med_type the view's own combinations are read instead). It has at most (number of insutypes) times
# as many rows as the claims' combinations, each looked up once in Python (~10 µs: 90,000 in 0.87 s), so it stays
# the cheaper way up to some 70,000 distinct (insutype, med_type, dise_codg, level) combinations (two insutypes,
# ten million visits).
COMBOS_SUPERSET = ("SELECT i.insutype, v.med_type, v.dise_codg, v.level FROM (SELECT DISTINCT insutype FROM persons) i "
                   "CROSS JOIN (SELECT DISTINCT med_type, COALESCE(dise_codg, '') AS dise_codg, level FROM visits) v")
# every (insutype, med_type, dise_codg, level) of the claims' visits: what batch validation asks the pack about, and
# — where no 经办 fact changes a med_type — a superset of the combinations in visits_in (a visit without fee lines
# drops out there), read without evaluating that view a second time (measured 0.18 s against 0.45 s at 1M visits)
CLAIMS_COMBOS = ("SELECT DISTINCT p.insutype, v.med_type, COALESCE(v.dise_codg, '') AS dise_codg, v.level "
                 "FROM visits v JOIN persons p ON p.psn_no = v.psn_no")


# every person's psn_key (:func:`visits_in_query`): the rank in psn_no order. PERSONS_IN_KEY_ORDER lists psn_no in
# that order, so the stream can sort on the key alone and name each visit's person by it (the same ORDER BY: NULLs
# last in both, a psn_no given twice the same string at either rank). ``k_cats``: the person's categories as the
# kernel's bit field (:func:`category_mask`), made once per person rather than once per visit
PERSON_KEYS = "SELECT *, row_number() OVER (ORDER BY psn_no) AS psn_key, {mask} AS k_cats FROM {persons}"
PERSONS_IN_KEY_ORDER = "SELECT psn_no FROM {persons} ORDER BY psn_no"
# what a row of the checked join (visits_in_query(checked=True)) lacks, as the bits of k_check: fee lines whose
# visit is missing, a visit whose person is missing (batch validation's BAT021, BAT006), a visit without lines (BAT009)
CHECK_NO_VISIT, CHECK_NO_PERSON, CHECK_NO_LINES = 1, 2, 4


def category_mask(pack: CompiledPack, categories: str = "categories") -> str:
    """A person's categories (the list column ``categories``) as one BIGINT: bit i set for the pack's i-th category,
    the order :func:`yibao.batch.lower.lower` numbers them in (at most 63, KRN001). Made on the persons before the
    join, it saves testing every category on every visit and carrying the list through the join (the ordering query
    at 1M visits: CPU 0.92–1.11 → 0.83–1.02 s, each the median of 5, in 6 alternating runs of old and new)."""
    terms = [f"(CASE WHEN list_contains({categories}, {q(code)}) THEN {1 << i} ELSE 0 END)"
             for i, code in enumerate(pack.categories)]
    return f"CAST({' + '.join(terms) or '0'} AS BIGINT)"


def visits_in_query(pack: CompiledPack, visits: str = "visits", persons: str = "persons",
                    amounts: str = "classified", offsite: bool = False, facts: bool = False,
                    checked: bool = False) -> str:
    """visits ⋈ persons ⋈ classified amounts, with a boolean column per pack category.

    ``offsite``: the visits carry the optional ``offsite_status`` column (异地就医 local / filed / unfiled),
    used as given. ``facts``: the claims directory has the 经办 facts exported from the store
    (``handling_facts``): a 门诊慢特病 visit without a certification valid on its settlement day is settled as
    the pack says (ordinary outpatient, or refused by validation: BAT015), and — unless the column is given —
    the 异地就医 status is derived from the 参保地 (persons.admdvs), the institution's area and the filings valid
    on the visit's start day; both by the online definitions (:mod:`yibao.handling.effects`). Otherwise every
    visit is local and keeps its med_type.

    ``k_cats``: the categories of the ``cat_<code>`` columns as the kernel's bit field (:func:`category_mask`), which
    the stream reads instead of those columns.

    ``psn_key``: the person's rank in psn_no order (:data:`PERSON_KEYS`) — the kernel's ORDER BY sorts on this
    integer instead of the string (the same order, measured about a third faster at 1M visits), and with
    :data:`PERSONS_IN_KEY_ORDER` need not carry the string through the sort at all.

    ``checked``: visits ⟕ persons ⟗ classified instead, every row kept, with ``k_check`` saying what it lacks
    (:data:`CHECK_NO_VISIT`, :data:`CHECK_NO_PERSON`, :data:`CHECK_NO_LINES`, added): the settle stream counts
    batch validation's join checks on these rows as it reads them and settles only the complete ones
    (:class:`yibao.batch.validate.JoinCounts`), so the joins are made once, not once to check and once to settle.
    """
    cats = ",\n       ".join(
        f"COALESCE(list_contains(p.categories, {q(code)}), FALSE) AS cat_{ident(code)}" for code in pack.categories
    )
    cats = (cats + ",") if cats else ""
    med_type, status, joins = "v.med_type", "'local'", ""
    if facts:
        med_type = settled_med_type_sql(pack.pack, "v.med_type", "cert.mdtrt_id")
        status = offsite_status_sql("p.admdvs", "i.admdvs", "filed.mdtrt_id")
        joins = (f"LEFT JOIN institutions i ON i.fixmedins_code = v.fixmedins_code\n"
                 f"LEFT JOIN ({certified_visits_sql(visits)}) cert ON cert.mdtrt_id = v.mdtrt_id\n"
                 f"LEFT JOIN ({filed_visits_sql(visits)}) filed ON filed.mdtrt_id = v.mdtrt_id")
    if offsite:
        status = "COALESCE(v.offsite_status, 'local')"
    check = ""
    if checked:
        check = (f",\n       CAST(CASE WHEN v.mdtrt_id IS NULL THEN {CHECK_NO_VISIT} ELSE 0 END"
                 f" + CASE WHEN p.psn_no IS NULL THEN {CHECK_NO_PERSON} ELSE 0 END"
                 f" + CASE WHEN a.mdtrt_id IS NULL THEN {CHECK_NO_LINES} ELSE 0 END AS TINYINT) AS k_check")
    return f"""
SELECT v.psn_no, p.psn_key, year(v.setl_time) AS yr, v.setl_time, v.mdtrt_id, p.insutype, COALESCE(p.retiree, FALSE) AS retiree,
       p.age,{" p.hh_no," if pack.uses_households else ""} p.k_cats,
       {cats}
       {med_type} AS med_type, v.level, COALESCE(v.dise_codg, '') AS dise_codg, v.referral_from_level,
       {status} AS offsite_status,
       COALESCE({fen('v.acct_balance')}, 0) AS acct_balance,
       a.fulamt, a.overlmt, a.pre, a.inscp, a.inscp_full{check}
FROM {visits} v
{"LEFT JOIN" if checked else "JOIN"} ({PERSON_KEYS.format(persons=persons, mask=category_mask(pack))}) p ON p.psn_no = v.psn_no
{"FULL JOIN" if checked else "JOIN"} {amounts} a ON a.mdtrt_id = v.mdtrt_id
{joins}
"""
