"""Country codes: ISO 3166-1 alpha-3 from pycountry, plus documented codes for
non-countries, plus reviewable alias files for publishers' spellings.

Resolution order for a printed label (after :func:`~canada_asylum_data.cells.clean_text`):
1. the alias files ``datapackage/aliases/*.yml`` (``label: CODE``; checked first, so a
   reviewer can override anything), 2. pycountry's exact ``name``, ``official_name`` or
   ``common_name`` (case-insensitive), 3. an ISO alpha-3 code printed as the label.
No fuzzy matching: a label that does not resolve is an error the alias file must fix.
"""

from __future__ import annotations

import gettext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pycountry
import yaml

from .yamlio import read_yaml
from .cells import clean_text
from .errors import ConfigError

#: Codes for rows that are not an ISO country. X-prefixed codes are in the ISO 3166-1
#: user-assigned range, so they can never clash with a real country.
EXTRA_CODES: dict[str, tuple[str, str, str]] = {
    # code: (English name, French name, what it stands for)
    "XXA": ("Stateless", "Apatride", "Stateless persons (ICAO/ISO user-assigned code XXA)."),
    "XXX": ("Unknown or not stated", "Inconnu ou non déclaré",
            "Country unknown, not stated or left blank by the publisher."),
    "XOC": ("Other countries", "Autres pays",
            "Aggregate of every country not listed separately in a top-N table."),
    "XKX": ("Kosovo", "Kosovo", "Kosovo (code used by UNHCR and the EU; not in ISO 3166-1)."),
    "XTI": ("Tibetan", "Tibétain", "Tibetan, as listed separately by some publishers."),
    "XPA": ("Palestinian", "Palestinien", "Palestinian, where listed apart from the State of Palestine."),
}


@dataclass(frozen=True)
class Country:
    code: str
    name_en: str
    name_fr: str
    iso_alpha2: str | None
    iso_numeric: str | None
    kind: str  # "iso" or "other"
    note: str | None


@lru_cache(maxsize=1)
def _fr() -> gettext.NullTranslations:
    try:
        return gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["fr"])
    except OSError:  # pragma: no cover - pycountry always ships fr
        return gettext.NullTranslations()


def all_countries() -> list[Country]:
    fr = _fr()
    out = [
        Country(c.alpha_3, getattr(c, "common_name", None) or c.name, fr.gettext(c.name),
                c.alpha_2, c.numeric, "iso", None)
        for c in pycountry.countries
    ]
    out += [Country(code, en, frn, None, None, "other", note)
            for code, (en, frn, note) in EXTRA_CODES.items()]
    return sorted(out, key=lambda c: c.code)


def _key(label: str) -> str:
    return clean_text(label).casefold()


class CountryResolver:
    """Resolve printed country labels to codes and remember how each was resolved."""

    def __init__(self, alias_dir: Path):
        self.alias_dir = alias_dir
        self.aliases: dict[str, tuple[str, str]] = {}  # key -> (code, alias file)
        known = {c.code for c in all_countries()}
        for path in sorted(alias_dir.glob("*.yml")):
            try:
                doc = read_yaml(path) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"alias file is not valid YAML ({exc})", str(path)) from exc
            for label, code in (doc.get("aliases") or {}).items():
                if code not in known:
                    raise ConfigError(f"alias {label!r} points to unknown code {code!r}", str(path),
                                      "use an ISO alpha-3 code or one of countries.EXTRA_CODES")
                self.aliases[_key(label)] = (code, path.name)
        self._iso: dict[str, str] = {}
        for c in pycountry.countries:
            for attr in ("name", "official_name", "common_name"):
                name = getattr(c, attr, None)
                if name:
                    self._iso.setdefault(name.casefold(), c.alpha_3)
        self._codes = known
        self.used: dict[tuple[str, str], tuple[str, str]] = {}
        self._cache: dict[tuple[str, str], str] = {}

    def resolve(self, label: str, source_family: str) -> str | None:
        """Return the code for ``label`` or None; records (family, label) -> (code, how)."""
        cached = self._cache.get((label, source_family))
        if cached is not None:
            return cached
        code = self._resolve(label, source_family)
        if code is not None:
            self._cache[(label, source_family)] = code
        return code

    def _resolve(self, label: str, source_family: str) -> str | None:
        key = _key(label)
        how = None
        if key in self.aliases:
            code, how = self.aliases[key][0], f"alias file {self.aliases[key][1]}"
        elif key in self._iso:
            code, how = self._iso[key], "pycountry name"
        elif clean_text(label).upper() in self._codes and len(clean_text(label)) == 3:
            code, how = clean_text(label).upper(), "ISO alpha-3 code"
        else:
            return None
        self.used[(source_family, clean_text(label))] = (code, how)
        return code
