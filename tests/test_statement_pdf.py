"""The statement (结算单) as PDF: same content and masking as the HTML page, byte-identical on every
fetch, and the HTML route's errors.

Hand-computed (pack shandong-2024, resident 390, 普通门诊 at a 基层 hospital, 60%): three lines of
2 × 12.50 = 75.00; the 丙类 line → 全自费 25.00; the 乙类 line → 先行自付 2.50; in scope 47.50;
统筹 47.50 × 60% = 28.50; cash 75.00 − 28.50 = 46.50. pypdf extracts the STSong-Light text
(Chinese included) through the font's predefined UniGB-UCS2-H encoding.
"""

from __future__ import annotations

import io
import json
from decimal import Decimal
from html import unescape

import pypdf
from hypothesis import given, settings
from hypothesis import strategies as st

from test_api_auth import api, settled_visit  # noqa: F401  (the REST app with sample keys, and a settled visit)
from yibao.service import sample
from yibao.service.statement_page import render_html, statement_view
from yibao.service.statement_pdf import render_pdf


def pdf_text(body: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(body))
    assert len(reader.pages) >= 1
    return "\n".join(page.extract_text() for page in reader.pages)


def squeeze(text: str) -> str:
    """Extraction breaks wrapped lines where the layout did: compare without whitespace."""
    return "".join(text.split())


def fetch(call, who: str, setl_id: str):
    return call(who, "GET", f"/settlements/{setl_id}/statement.pdf")


def test_pdf_statement_shows_the_settlement_as_json_does(api):
    call, _ = api
    _, setl_id = settled_visit(call)
    r = fetch(call, "his1", setl_id)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"] == f'inline; filename="statement-{setl_id}.pdf"'
    assert r.content.startswith(b"%PDF-") and r.content.rstrip().endswith(b"%%EOF")
    info = json.loads(call("his1", "GET", f"/settlements/{setl_id}").text, parse_float=Decimal)["setlinfo"]
    assert {k: str(info[k]) for k in ("medfee_sumamt", "hifp_pay", "psn_cash_pay")} == \
        {"medfee_sumamt": "75.00", "hifp_pay": "28.50", "psn_cash_pay": "46.50"}
    text = pdf_text(r.content)
    assert "医疗保障基金结算单" in text and setl_id in text and info["mdtrt_id"] in text
    lines = text.splitlines()
    for field, yuan in (("medfee_sumamt", "75.00"), ("hifp_pay", "28.50"), ("psn_cash_pay", "46.50")):
        at = lines.index(field)  # one cell per line: field, Chinese name, amount
        assert lines[at + 2].strip() == yuan
    assert "本结算已撤销" not in text
    assert b"/BaseFont /STSong-Light" in r.content and b"/FontFile" not in r.content  # CID font, nothing embedded


def test_pdf_and_html_show_the_same_statement(api):
    call, _ = api
    _, setl_id = settled_visit(call)
    html = unescape(call("his1", "GET", f"/settlements/{setl_id}/statement.html").text)
    text = squeeze(pdf_text(fetch(call, "his1", setl_id).content))
    record = call("his1", "GET", f"/settlements/{setl_id}").json()
    view = statement_view(record, {"certno": sample.certno(1), "psn_name": "测试甲0"},
                          {"fixmedins_code": sample.HOSPITAL, "fixmedins_name": "示例社区卫生服务中心"})
    shown = [*view.header, *view.explanation, *(c for row in (*view.setlinfo, *view.details) for c in row)]
    assert len(view.explanation) >= 5 and len(view.details) == 1
    for piece in shown:
        assert piece in html and squeeze(piece) in text, piece
    numbered = [n for n in range(1, len(view.explanation) + 1) if f"{n}.{squeeze(view.explanation[n - 1])}" in text]
    assert numbered == list(range(1, len(view.explanation) + 1))


def test_identities_masked_in_the_pdf_for_roles_that_do_not_need_them(api):
    call, _ = api
    _, setl_id = settled_visit(call)
    certno = sample.certno(1)
    full = pdf_text(fetch(call, "reviewer", setl_id).content)
    masked = pdf_text(fetch(call, "auditor", setl_id).content)
    assert certno in full and "测试甲0" in full
    assert certno not in masked and "测试甲0" not in masked
    assert certno[:6] + "********" + certno[-4:] in masked and "测***" in masked


def test_same_settlement_gives_byte_identical_pdfs(api):
    call, _ = api
    _, setl_id = settled_visit(call)
    first, second = fetch(call, "his1", setl_id).content, fetch(call, "clerk", setl_id).content
    assert first == second  # both see the identity in full; nothing dated or random in the file
    _, other_id = settled_visit(call)
    assert fetch(call, "his1", other_id).content != first


def test_reversed_settlement_pdf_says_so(api):
    call, _ = api
    _, setl_id = settled_visit(call)
    before = fetch(call, "his1", setl_id).content
    rev = call("his1", "POST", f"/settlements/{setl_id}/reverse", json={"at": "2024-04-01T11:00:00"})
    assert rev.status_code == 200, rev.text
    revs_setl_id = call("his1", "GET", f"/settlements/{setl_id}").json()["setlinfo"]["revs_setl_id"]
    after = fetch(call, "his1", setl_id).content
    assert after != before
    assert squeeze(f"本结算已撤销(撤销流水 {revs_setl_id})") in squeeze(pdf_text(after))


def test_pdf_route_errors_are_the_html_routes(api):
    call, _ = api
    _, setl_id = settled_visit(call)
    for suffix in ("html", "pdf"):
        missing = call("his1", "GET", f"/settlements/S_NO_SUCH/statement.{suffix}")
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
        assert missing.json()["problems"][0]["code"] == "SET060" and missing.json()["problems"][0]["path"] == "setl_id"
        assert call(None, "GET", f"/settlements/{setl_id}/statement.{suffix}").status_code == 401
        other = call("his2", "GET", f"/settlements/{setl_id}/statement.{suffix}")
        assert other.status_code == 403 and other.json()["problems"][0]["code"] == "AUT004"


RECORD = {
    "setlinfo": {**{f: "0.00" for f in ("medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt",
                                         "inscp_scp_amt", "act_pay_dedc", "hifp_pay", "pool_prop_selfpay",
                                         "cvlserv_pay", "hifes_pay", "hifmi_pay", "hifob_pay", "maf_pay", "oth_pay",
                                         "fund_pay_sumamt", "psn_part_amt", "acct_pay", "psn_cash_pay",
                                         "hosp_part_amt")},
                 "medfee_sumamt": "123456.78", "psn_cash_pay": "123456.78", "psn_part_amt": "123456.78",
                 "setl_id": "S1", "mdtrt_id": "M1", "setl_time": "2024-04-01 10:00:00", "psn_no": "P1",
                 "insutype": "390", "med_type": "21", "pack_id": "p", "pack_version": "1", "setl_stas": "valid",
                 "revs_setl_id": None},
    "setldetail": [],
}
PERSON = {"certno": "370102********0017", "psn_name": "测***"}
INSTITUTION = {"fixmedins_code": "H1", "fixmedins_name": "示例医院"}


@settings(max_examples=20)
@given(st.lists(st.text(alphabet="甲乙丙元起付线<>&\"'()[]=+×%·.,:;0123456789abcXYZ ", min_size=1, max_size=300)
                .filter(str.strip), min_size=1, max_size=12))
def test_any_explanation_text_is_printed_literally(lines):
    """Markup characters in the text are the text (Paragraph parses markup), and long lines wrap onto more pages."""
    record = {**RECORD, "explanation": lines}
    body = render_pdf(record, PERSON, INSTITUTION)
    assert body == render_pdf(record, PERSON, INSTITUTION)
    text, html = squeeze(pdf_text(body)), unescape(render_html(record, PERSON, INSTITUTION))
    assert "123,456.78" in text and "123,456.78" in html
    for line in lines:
        assert squeeze(line) in text and f"<li>{line}</li>" in html
