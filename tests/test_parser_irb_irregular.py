"""IRB irregular-border-crosser claims, top 10 countries, cumulative (parser
irb_irregular_mhtml): the 18 MHTML snapshots, plus a hand-written mini MHTML fixture
(tests/fixtures/irb/irregular-2018-09-mini.mht.txt, invented numbers) and variants of it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
import email
import email.policy
import quopri

import pytest

from canada_asylum_data.countries import CountryResolver
from canada_asylum_data.errors import ParseError
from canada_asylum_data.parsers import irb_irregular_mhtml

DATAPACKAGE = Path(__file__).resolve().parent.parent / "datapackage"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

TABLE = "irb_irregular_crosser_claims"
MEASURES = ["referred", "accepted", "rejected", "abandoned", "withdrawn_other", "finalized", "pending"]
COMPONENTS = ["accepted", "rejected", "abandoned", "withdrawn_other"]
ENDS = ["2018-09", "2018-12", "2019-03", "2019-06", "2019-09", "2019-12", "2020-06", "2020-09",
        "2021-03", "2021-06", "2021-09", "2021-12", "2022-03",
        "2022-09", "2022-12", "2023-06", "2023-09", "2024-03"]
#: US rows (Intake, Accepted, Rejected, Abandoned, Withdrawn & Other, Total, Pending),
#: checked by hand against the tables.
US = {
    "2018-09": [733, 1, 112, 21, 29, 163, 570],
    "2018-12": [835, 2, 163, 21, 35, 221, 614],
    "2019-03": [898, 3, 247, 25, 54, 329, 569],
    "2019-06": [1000, 5, 345, 30, 62, 442, 558],
    "2019-09": [1059, 7, 383, 35, 71, 496, 563],
    "2019-12": [1116, 11, 422, 35, 72, 540, 576],
    "2020-06": [1156, 10, 477, 41, 82, 610, 546],
    "2020-09": [1166, "--", 515, "--", 82, 648, 518],
    "2021-03": [1184, "--", 611, "--", 97, 778, 406],
    "2021-06": [1193, "--", 670, "--", 116, 858, 335],
    "2021-09": [1201, "--", 718, "--", 135, 926, 275],
    "2021-12": [1203, 24, 754, 57, 160, 995, 208],
    "2022-03": [1217, "--", "--", 65, 170, 1045, 172],
}
TOTALS = {
    "2018-09": [34854, 3142, 2429, 487, 482, 6540, 28314],
    "2019-06": [45517, 9069, 7786, 707, 782, 18344, 27167],
    "2022-03": [63291, 27297, 18919, 1134, 4763, 52113, 11178],
    "2024-03": [113368, 43071, 23244, 2132, 6591, 75038, 38330],
}
UNSUPPRESSED = ENDS[:7]  # 2018-09 .. 2020-06: no "--" anywhere


@pytest.fixture(scope="module")
def snaps(real_file):
    out = {}
    for end in ENDS:
        src, path = real_file(f"irb-irregular-{end}")
        out[end] = (src, irb_irregular_mhtml.parse(path, src))
    return out


def _us(parsed):
    return [r for r in parsed.tables[TABLE] if r["country_label"] == "United States of America"]


# --- real files --------------------------------------------------------------------------

def test_source_records(sources):
    ids = sorted(s for s in sources if s.startswith("irb-irregular-") and not sources[s].live)
    assert ids == sorted(f"irb-irregular-{e}" for e in ENDS)
    assert sources["irb-irregular-current"].live  # the page itself, each version a snapshot
    for end in ENDS:
        src = sources[f"irb-irregular-{end}"]
        assert src.parser == "irb_irregular_mhtml" and src.series == TABLE and src.sha256
        # the capture the MHTML was saved from (id_: original bytes); archive_url, where the
        # saved copy's exact path is known, is that byte-identical GitHub blob
        assert src.options["capture_url"].startswith("https://web.archive.org/web/")
        assert "id_/" in src.options["capture_url"]
        assert src.archive_url is None or src.archive_url.startswith(
            "https://raw.githubusercontent.com/lifers/STCA-dataset/")
        assert src.period_start == ("2017-01-01" if end >= "2022-09" else "2017-02-01")


def test_rows_and_periods(snaps):
    for end, (src, parsed) in snaps.items():
        rows = parsed.tables[TABLE]
        assert set(parsed.tables) == {TABLE}
        assert len(rows) == 11, end  # ten countries + Other Countries
        assert {(r["period_start"], r["period_end"]) for r in rows} == {(src.period_start, src.period_end)}
        assert src.period_end.startswith(end)
        assert rows[-1]["country_label"] == "Other Countries"
        assert parsed.file_facts["vintage"] == src.vintage
        assert all(r["source_locator"].startswith("table 2 ") for r in rows)


def test_us_rows(snaps):
    for end, (_, parsed) in snaps.items():
        us = _us(parsed)
        if end in US:
            assert len(us) == 1, end
            assert [us[0][m].csv for m in MEASURES] == US[end], end
        else:
            assert us == [], end  # the US left the top 10 after 2022-03


def test_totals(snaps):
    for end, (src, parsed) in snaps.items():
        assert [t.measure for t in parsed.totals] == MEASURES
        for t in parsed.totals:
            assert t.fact_table == TABLE
            assert t.scope == {"period_start": src.period_start, "period_end": src.period_end}
            assert t.label in ("Total (all countries)", "Total(all countries)", "Total")
        if end in TOTALS:
            assert [t.value.value for t in parsed.totals] == TOTALS[end], end
        footnoted = end in UNSUPPRESSED
        assert all(("Partial data for February and March 2017." in (t.notes or "")) == footnoted
                   for t in parsed.totals), end
        assert all(("Partial data" in (r["notes"] or "")) == footnoted for r in parsed.tables[TABLE])
    assert snaps["2019-03"][1].totals[0].label == "Total(all countries)"
    assert snaps["2022-09"][1].totals[0].label == "Total"


def test_header_typo_2018_q2_is_noted(snaps):
    for end, (_, parsed) in snaps.items():
        flagged = ["2018-Q2" in (r["notes"] or "") for r in parsed.tables[TABLE]]
        assert all(flagged) if end == "2018-09" else not any(flagged), end


def test_labels(snaps):
    resolver = CountryResolver(DATAPACKAGE / "aliases")
    keys = []
    for _, parsed in snaps.values():
        for r in parsed.tables[TABLE]:
            keys.append((r["period_end"], r["country_label"]))
            assert resolver.resolve(r["country_label"], "irb") is not None, r["country_label"]
            assert "\u200b" not in r["country_label"] and "  " not in r["country_label"]
            assert "\u00e2" not in r["country_label"]  # no mojibake
    assert len(keys) == len(set(keys)) == 18 * 11
    assert resolver.resolve("Other Countries", "irb") == "XOC"
    assert resolver.resolve("Congo, Democratic Republic", "irb") == "COD"
    assert resolver.resolve("Türkiye", "irb") == resolver.resolve("Turkey", "irb") == "TUR"


def _column_diffs(parsed):
    """measure -> (sum of readable country cells - printed total, number of hidden cells)."""
    totals = {t.measure: t.value.value for t in parsed.totals}
    out = {}
    for m in MEASURES:
        vals = [r[m].value for r in parsed.tables[TABLE]]
        out[m] = (sum(v for v in vals if v is not None) - totals[m], sum(v is None for v in vals))
    return out


def test_reconciliation_top10_plus_other_equals_total(snaps):
    """Unsuppressed snapshots: top 10 + Other = Total exactly, except the 2019-06 table,
    where the publisher's country rows are off (Withdrawn & Other -1, Pending +100)."""
    for end in UNSUPPRESSED:
        parsed = snaps[end][1]
        diffs = {m: d for m, (d, hidden) in _column_diffs(parsed).items()}
        assert all(hidden == 0 for _, hidden in _column_diffs(parsed).values())
        if end == "2019-06":
            assert diffs == {"referred": 0, "accepted": 0, "rejected": 0, "abandoned": 0,
                             "withdrawn_other": -1, "finalized": 0, "pending": 100}
            notes = {t.measure: t.notes for t in parsed.totals}
            assert "1 less than this printed total" in notes["withdrawn_other"]
            assert "100 more than this printed total" in notes["pending"]
            flagged = {t.measure for t in parsed.totals if getattr(t, "inconsistent", False)}
            assert flagged == {"withdrawn_other", "pending"}  # validate reports them as known
        else:
            assert set(diffs.values()) == {0}, end
            assert not any(getattr(t, "inconsistent", False) for t in parsed.totals), end


def test_reconciliation_suppressed_snapshots(snaps):
    """From 2020-09 on: columns with no "--" add up exactly; columns with "--" fall short
    of the total (the hidden cells hold the difference, complementary suppression means
    the gap can exceed 19 per cell)."""
    seen_gap = False
    for end in ENDS[7:]:
        for m, (diff, hidden) in _column_diffs(snaps[end][1]).items():
            if hidden == 0:
                assert diff == 0, (end, m)
            else:
                assert diff < 0, (end, m)
                seen_gap = seen_gap or -diff > 19 * hidden
    assert seen_gap  # e.g. 2022-03 rejected: 785 hidden in 1 cell (US)
    d = _column_diffs(snaps["2022-03"][1])
    assert d["rejected"] == (18134 - 18919, 1)


def test_reconciliation_rows_and_total_row(snaps):
    """accepted + rejected + abandoned + withdrawn_other = finalized in every row with no
    suppressed cell, except two publisher slips that the parser notes."""
    slips = {}
    for end, (_, parsed) in snaps.items():
        for r in parsed.tables[TABLE]:
            vals = [r[c].value for c in COMPONENTS]
            if None not in vals and sum(vals) != r["finalized"].value:
                slips[(end, r["country_label"])] = (sum(vals), r["finalized"].value)
                assert "publisher inconsistency" in r["notes"]
        t = {x.measure: x for x in parsed.totals}
        comp = sum(t[c].value.value for c in COMPONENTS)
        if end == "2021-12":
            assert (comp, t["finalized"].value.value) == (48275, 49000)
            assert "publisher inconsistency" in t["finalized"].notes
        else:
            assert comp == t["finalized"].value.value, end
    assert slips == {("2019-06", "Haiti"): (4019, 4020), ("2021-12", "Other Countries"): (14747, 15472)}


# --- fixture and bad input -----------------------------------------------------------------

MINI = FIXTURES / "irb" / "irregular-2018-09-mini.mht.txt"


@pytest.fixture
def fx_source(sources):
    return dataclasses.replace(sources["irb-irregular-2018-09"], id="irb-irregular-fixture")


def test_fixture_quirks(fx_source):
    parsed = irb_irregular_mhtml.parse(MINI, fx_source)
    rows = {r["country_label"]: r for r in parsed.tables[TABLE]}
    assert list(rows) == ["Nigeria", "Haiti", "United States of America", "Other Countries"]
    assert [rows["Haiti"][m].csv for m in MEASURES] == [800, 300, 100, 10, 15, 425, 375]  # NBSP
    assert [rows["United States of America"][m].csv for m in MEASURES] == [400, 1, 60, 5, 4, 70, 330]
    assert [t.value.value for t in parsed.totals] == [3100, 1200, 400, 50, 50, 1700, 1400]  # "1,\u200b200"
    assert parsed.totals[0].label == "Total(all countries)"
    assert "Footnote 1: Partial data for February and March 2017." in parsed.totals[0].notes
    assert all("2018-Q2" in r["notes"] for r in rows.values())
    assert parsed.file_facts == {"vintage": "2018-11-17"}
    assert not any("inconsistency" in (t.notes or "") for t in parsed.totals)


def _html_of(data: bytes) -> str:
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    part = next(p for p in msg.walk() if p.get_content_type() == "text/html")
    return part.get_payload(decode=True).decode("utf-8")


def _variant(tmp_path, change_html=None, change_bytes=None):
    data = MINI.read_bytes()
    if change_html:
        html = _html_of(data)
        new = change_html(html)
        assert new != html
        text = data.decode("ascii")
        start = text.index("\r\n\r\n", text.index("quoted-printable")) + 4
        end = text.index("\r\n------MultipartBoundary--fixture0000----\r\nContent-Type: text/css")
        qp = quopri.encodestring(new.encode("utf-8")).decode("ascii").replace("\n", "\r\n")
        data = (text[:start] + qp + text[end:]).encode("ascii")
    if change_bytes:
        data = change_bytes(data)
    path = tmp_path / "snap.mht"
    path.write_bytes(data)
    return path


def _raises(path, source, *fragments):
    with pytest.raises(ParseError) as exc:
        irb_irregular_mhtml.parse(path, source)
    msg = str(exc.value)
    assert source.id in msg, msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


def test_caption_period_checked_against_source(fx_source):
    wrong = dataclasses.replace(fx_source, period_end="2018-12-31")
    _raises(MINI, wrong, "caption period ends 2018-09-30", "2018-12-31")
    wrong = dataclasses.replace(fx_source, period_start="2017-01-01")
    _raises(MINI, wrong, "starts 2017-02-01")


def test_missing_table(tmp_path, fx_source):
    path = _variant(tmp_path, lambda h: h.replace("Irregular Border Crossers, Top 10", "Crossers, Top 10"))
    _raises(path, fx_source, "no table captioned", "snap.mht")


def test_caption_without_period(tmp_path, fx_source):
    path = _variant(tmp_path, lambda h: h.replace(" - February 2017 to September 2018</caption>", "</caption>"))
    _raises(path, fx_source, "caption", "no period")


def test_renamed_header(tmp_path, fx_source):
    path = _variant(tmp_path, lambda h: h.replace(">Intake<", ">Claims received<"))
    _raises(path, fx_source, "header row 1", "Claims received")


def test_unknown_pending_header(tmp_path, fx_source):
    path = _variant(tmp_path, lambda h: h.replace("Pending at end of period (2018-Q2)", "Open cases"))
    _raises(path, fx_source, "header row 1 col 4", "Open cases")


def test_extra_column(tmp_path, fx_source):
    path = _variant(tmp_path, lambda h: h.replace('scope="col">Total</th></tr>',
                                                  'scope="col">Total</th><th>Median</th></tr>'))
    _raises(path, fx_source, "header row 2", "Median")


def test_extra_cell_in_row(tmp_path, fx_source):
    path = _variant(tmp_path, lambda h: h.replace("<td>330</td></tr>", "<td>330</td><td>1</td></tr>"))
    _raises(path, fx_source, "row 4", "United States of America", "9 cells")


def test_text_in_number_cell_is_a_note(tmp_path, fx_source):
    path = _variant(tmp_path, lambda h: h.replace("<td>60</td>", "<td>n.a.</td>"))
    parsed = irb_irregular_mhtml.parse(path, fx_source)
    us = [r for r in parsed.tables[TABLE] if r["country_label"].startswith("United States")][0]
    assert us["rejected"].value is None and "'n.a.'" in us["rejected"].note


def test_missing_total_row(tmp_path, fx_source):
    path = _variant(tmp_path, lambda h: h.replace("Total(all countries)<sup", "All(countries)<sup"))
    _raises(path, fx_source, "row 1", "not the 'Total (all countries)' row")


def test_missing_other_countries_row(tmp_path, fx_source):
    path = _variant(tmp_path, lambda h: h.replace("Other    Countries", "Mexico"))
    _raises(path, fx_source, "not 'Other Countries'")


def test_duplicate_country(tmp_path, fx_source):
    path = _variant(tmp_path, lambda h: h.replace(">Haiti<", ">Nigeria<"))
    _raises(path, fx_source, "row 3", "listed twice")


def test_truncated_file(tmp_path, fx_source):
    path = _variant(tmp_path, change_bytes=lambda b: b[: len(b) * 2 // 3])
    _raises(path, fx_source, "truncated")


def test_not_mhtml(tmp_path, fx_source):
    path = tmp_path / "snap.mht"
    path.write_text(_html_of(MINI.read_bytes()), encoding="utf-8")
    _raises(path, fx_source, "not an MHTML")


def test_wrong_file_type(tmp_path, fx_source):
    path = tmp_path / "snap.mht"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    _raises(path, fx_source, "binary")


def test_html_part_not_utf8(tmp_path, fx_source):
    path = _variant(tmp_path, change_bytes=lambda b: b.replace(b"=E2=80=8B", b"=E2=80", 1))
    _raises(path, fx_source, "not valid UTF-8", "first text/html part")


def test_empty_file(tmp_path, fx_source):
    path = tmp_path / "snap.mht"
    path.write_bytes(b"")
    _raises(path, fx_source, "empty")
