"""events.yml: every event a reporter can cite from an official or primary page."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from canada_asylum_data.reference import event_rows

EVENTS = Path(__file__).resolve().parents[1] / "datapackage" / "events.yml"

#: Official or primary publishers: governments, courts, official gazettes and treaty
#: registers, records offices. A host matches a domain or any of its sub-domains.
OFFICIAL_DOMAINS = (
    "canada.ca", "gc.ca",             # Government of Canada: canada.ca, laws-lois.justice.gc.ca,
                                      # gazette.gc.ca, pm.gc.ca, treaty-accord.gc.ca,
                                      # decisions.fct-cf.gc.ca, decisions.fca-caf.gc.ca,
                                      # recueil.fja-cmf.gc.ca
    "scc-csc.ca",                     # Supreme Court of Canada
    "archives.gov", "whitehouse.gov", "federalregister.gov", "fec.gov", "dhs.gov",
    "congress.gov", "govinfo.gov",
)

#: Hosts that must never come back (encyclopedias and their mirrors, blogs, tabloids).
WEAK = ("wikipedia.org", "infogalactic.com", "timeslive.co.za", "mesidor.ca", "jriln.com",
        "canada-law.com", "newswire.ca", "nationalpost.com")

REQUIRED = {
    "us_election_2016": "2016-11-08",
    "us_election_2020": "2020-11-03",
    "us_election_2024": "2024-11-05",
    "us_inauguration_2017": "2017-01-20",
    "us_inauguration_2021": "2021-01-20",
    "us_inauguration_2025": "2025-01-20",
    "federal_court_stca_2020": "2020-07-22",
    "fca_stca_2021": "2021-04-15",
    "scc_stca_2023": "2023-06-16",
    "stca_additional_protocol": "2023-03-25",
    "covid_border_direct_back": "2020-03-21",
    "covid_direct_back_ends": "2021-11-21",
}


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return event_rows(EVENTS)


def official(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return urlsplit(url).scheme == "https" and any(
        host == d or host.endswith("." + d) for d in OFFICIAL_DOMAINS)


def test_allow_list_is_not_trivially_open():
    assert official("https://www.canada.ca/en/x.html")
    assert official("https://decisions.scc-csc.ca/scc-csc/news/en/item/7713/index.do")
    assert not official("https://en.wikipedia.org/wiki/X")
    assert not official("https://evilcanada.ca/x")  # a suffix, not a sub-domain
    assert not official("http://www.canada.ca/x")  # plain http is not a permanent citation


def test_required_events_present_with_their_dates(events):
    got = {e["event_id"]: str(e["event_date"]) for e in events}
    missing = sorted(set(REQUIRED) - set(got))
    assert not missing, f"events.yml lacks {missing}"
    wrong = {k: (got[k], v) for k, v in REQUIRED.items() if got[k] != v}
    assert not wrong, wrong


def test_every_event_cites_an_official_page_or_says_why_not(events):
    for e in events:
        url = e["source_url"]
        note = e["verified"] or ""
        assert not any(w in url for w in WEAK), (e["event_id"], url)
        if not official(url):
            assert "not an official page because" in note.lower(), (
                f"{e['event_id']}: {url} is not on the allow-list of official domains and its "
                "verified note does not say why")
        # the note says how the date was established and whether the link was read
        assert len(note) > 60 and ("stored copy" in note.lower() or "not fetched" in note), e["event_id"]


def test_dates_and_ids_are_unique_and_make_sense(events):
    ids = Counter(e["event_id"] for e in events)
    assert [i for i, n in ids.items() if n > 1] == []
    urls = Counter((e["source_url"], str(e["event_date"])) for e in events)
    assert [u for u, n in urls.items() if n > 1] == []  # one page, one event per date
    today = dt.date.today()
    for e in events:
        day = dt.date.fromisoformat(str(e["event_date"]))
        assert dt.date(2000, 1, 1) <= day <= today, e["event_id"]
        if e["event_id"].startswith("us_election_"):
            assert day.weekday() == 1 and 2 <= day.day <= 8 and day.month == 11, e  # Tuesday after 1st Monday
            assert str(day.year) in e["source_url"], e["event_id"]
        if e["event_id"].startswith("us_inauguration_"):
            assert (day.month, day.day) == (1, 20), e
            assert day.year == int(e["event_id"][-4:])
        # a page dated in its URL must not be dated after the event it confirms by more
        # than a year (the mislinked 2017 inauguration pointed at the 2025 one)
        years = [int(p) for p in urlsplit(e["source_url"]).path.split("/")
                 if p.isdigit() and len(p) == 4 and p.startswith("20")]
        assert all(day.year <= y <= day.year + 1 for y in years), (e["event_id"], years)
