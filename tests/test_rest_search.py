"""``GET /api/v1/settlements``: the desk's search before a reversal or a reprint.

Newest first, every filter narrows, pages continue by cursor without repeats or gaps, an
institution sees only its own settlements, and bad filters are 4xx problems naming the field.
"""

from __future__ import annotations

from decimal import Decimal

from test_api_auth import api, settled_visit  # noqa: F401  (the REST app with sample keys, and a settled visit)


def search(call, who: str = "clerk", **params):
    r = call(who, "GET", "/settlements", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_search_filters_pages_and_scopes(api):  # noqa: F811
    call, _ = api
    made = [settled_visit(call) for _ in range(3)]  # three settlements of P000000001 at his1
    reversed_mdtrt, reversed_setl = made[0]
    assert call("his1", "POST", f"/settlements/{reversed_setl}/reverse", json={"at": "2024-04-02T09:00:00"}).status_code \
        == 409  # latest first: the first of three cannot be reversed yet
    last_mdtrt, last_setl = made[-1]
    assert call("his1", "POST", f"/settlements/{last_setl}/reverse", json={"at": "2024-04-02T09:00:00"}).status_code == 200

    mine = search(call, "his1", psn_no="P000000001")["settlements"]
    ids = [r["setl_id"] for r in mine]
    assert {s for _, s in made} <= set(ids)
    assert [r["setl_time"] for r in mine] == sorted((r["setl_time"] for r in mine), reverse=True)
    assert {r["fixmedins_code"] for r in mine} == {"H37010200001"}
    row = next(r for r in mine if r["setl_id"] == last_setl)
    assert row["setl_stas"] == "reversed" and row["revs_setl_id"] and row["mdtrt_id"] == last_mdtrt
    full = call("clerk", "GET", f"/settlements/{made[1][1]}").json()["setlinfo"]
    listed = next(r for r in mine if r["setl_id"] == made[1][1])
    assert Decimal(str(listed["medfee_sumamt"])) == Decimal(str(full["medfee_sumamt"]))
    assert Decimal(str(listed["hifp_pay"])) == Decimal(str(full["hifp_pay"]))

    assert [r["setl_id"] for r in search(call, mdtrt_id=reversed_mdtrt)["settlements"]] == [reversed_setl]
    assert last_setl not in {r["setl_id"] for r in search(call, psn_no="P000000001", setl_stas="valid")["settlements"]}
    assert search(call, psn_no="P000000001", begndate="2024-04-02")["settlements"] == []
    assert len(search(call, psn_no="P000000001", begndate="2024-04-01", enddate="2024-04-01")["settlements"]) == len(ids)

    # pages of one: the same rows in the same order, then no cursor
    paged, cursor = [], None
    while True:
        page = search(call, psn_no="P000000001", limit=1, **({"cursor": cursor} if cursor else {}))
        paged += [r["setl_id"] for r in page["settlements"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == ids

    # another institution sees none of his1's, and may not ask for them
    assert search(call, "his2", psn_no="P000000001")["settlements"] == []
    refused = call("his2", "GET", "/settlements", params={"fixmedins_code": "H37010200001"})
    assert refused.status_code == 403 and refused.json()["problems"][0]["code"] == "AUT004"
    assert call("auditor", "GET", "/settlements").status_code == 200  # auditors may read settlements


def test_bad_search_input_is_a_problem_naming_the_field(api):  # noqa: F811
    call, _ = api
    for params, code, field in (({"cursor": "nonsense"}, "SET061", "cursor"),
                                ({"begndate": "2024-05-01", "enddate": "2024-04-01"}, "SET062", "enddate")):
        r = call("clerk", "GET", "/settlements", params=params)
        assert r.status_code == 422 and r.json()["problems"][0]["code"] == code, r.text
        assert r.json()["problems"][0]["path"] == field
    r = call("clerk", "GET", "/settlements", params={"limit": 0})
    assert r.status_code == 422 and "limit" in r.text
    r = call("clerk", "GET", "/settlements", params={"setl_stas": "gone"})
    assert r.status_code == 422 and "setl_stas" in r.text
    assert call(None, "GET", "/settlements").status_code == 401
