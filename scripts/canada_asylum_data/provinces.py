"""Canada's 13 provinces and territories, plus the non-province rows publishers print."""

from __future__ import annotations

from .cells import clean_text

#: code, English name, French name, kind
PROVINCES: list[tuple[str, str, str, str]] = [
    ("NL", "Newfoundland and Labrador", "Terre-Neuve-et-Labrador", "province"),
    ("PE", "Prince Edward Island", "Île-du-Prince-Édouard", "province"),
    ("NS", "Nova Scotia", "Nouvelle-Écosse", "province"),
    ("NB", "New Brunswick", "Nouveau-Brunswick", "province"),
    ("QC", "Quebec", "Québec", "province"),
    ("ON", "Ontario", "Ontario", "province"),
    ("MB", "Manitoba", "Manitoba", "province"),
    ("SK", "Saskatchewan", "Saskatchewan", "province"),
    ("AB", "Alberta", "Alberta", "province"),
    ("BC", "British Columbia", "Colombie-Britannique", "province"),
    ("YT", "Yukon", "Yukon", "territory"),
    ("NT", "Northwest Territories", "Territoires du Nord-Ouest", "territory"),
    ("NU", "Nunavut", "Nunavut", "territory"),
    # Rows that are not a province but hold claimants in provincial breakdowns.
    ("XO", "Outside Canada", "À l'extérieur du Canada", "other"),
    ("XN", "Province/territory not stated", "Province ou territoire non déclaré", "other"),
]

_ALIASES = {
    "newfoundland": "NL",
    "newfoundland & labrador": "NL",
    "p.e.i.": "PE",
    "pei": "PE",
    "québec": "QC",
    "yukon territory": "YT",
    "northwest territory": "NT",
    "outside canada": "XO",
    "province/territory of claim not stated": "XN",
    "province/territory not stated": "XN",
    "not stated": "XN",
}

_BY_NAME = {name.lower(): code for code, name, _fr, _k in PROVINCES}
_BY_NAME.update({code.lower(): code for code, *_ in PROVINCES})
_BY_NAME.update(_ALIASES)


def resolve_province(label: str) -> str | None:
    """Return the province code for a printed label, or None if it is not one."""
    key = clean_text(label).lower().rstrip("*").strip()
    return _BY_NAME.get(key)
