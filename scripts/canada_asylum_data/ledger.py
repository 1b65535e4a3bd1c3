"""The validation ledger: which resources Frictionless has already passed, so that a
refresh re-validates only what changed.

A resource's digest covers everything Frictionless reads to judge it: its entry in
datapackage.json (schema, dialect, encoding, and the byte count and sha256 of its CSV
file), the entries of the resources its foreign keys point to, and the Frictionless
version. Two resources with the same digest get the same verdict, so a resource whose
digest the ledger holds needs no second pass. The ledger lives in ``build/`` (it is
local, never published), is written only after Frictionless passed every resource it
lists, and a missing or unreadable ledger just means a full validation.

``canada-asylum-data validate`` always runs Frictionless over every resource (and
records the result); so does the test suite, over the committed package.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from pathlib import Path

from .files import atomic_write

LEDGER_NAME = "validated.json"


def resource_digests(desc: dict) -> dict[str, str]:
    """Resource name -> digest of what its Frictionless verdict depends on."""
    frictionless = version("frictionless")
    entries = {r["name"]: r for r in desc["resources"]}
    out: dict[str, str] = {}
    for name, res in entries.items():
        referenced = sorted({fk["reference"].get("resource") or name
                             for fk in (res.get("schema") or {}).get("foreignKeys") or []} - {name})
        parts = {"frictionless": frictionless, "resource": res,
                 "references": {ref: entries.get(ref) for ref in referenced}}
        blob = json.dumps(parts, sort_keys=True, ensure_ascii=False).encode("utf-8")
        out[name] = "sha256:" + hashlib.sha256(blob).hexdigest()
    return out


def load(path: Path) -> list[str]:
    """Digests Frictionless passed, oldest first; empty when there is no readable ledger."""
    try:
        return [str(d) for d in json.loads(path.read_text(encoding="utf-8"))["passed"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def to_validate(desc: dict, path: Path) -> list[str]:
    """Names of the resources the ledger does not vouch for, in descriptor order."""
    passed = set(load(path))
    return [name for name, digest in resource_digests(desc).items() if digest not in passed]


def record(desc: dict, path: Path, keep: int = 500) -> None:
    """Add the digests of every resource of ``desc`` (call only after they all passed).
    The newest ``keep`` digests are kept; the file is replaced atomically."""
    new = list(resource_digests(desc).values())
    fresh = set(new)
    merged = [d for d in load(path) if d not in fresh] + new
    atomic_write(path, json.dumps({"about": "digests of data package resources that passed "
                                            "Frictionless validation (see canada_asylum_data/ledger.py)",
                                   "passed": merged[-keep:]}, indent=1) + "\n")
