"""The rows of a table, view or row page rendered in Python, not cell by cell in Jinja;
and the publisher's suppression marker in them.

Datasette 0.65's ``_table.html`` writes each cell with three template expressions
(``col-{{ cell.column|to_css_class }}``, ``type-{{ cell.value_type }}``,
``{{ cell.value }}``). In Jinja's async mode (Datasette's) every expression is awaited
and escaped on its own and every loop step is an async iteration, so a 200-row page of
17 columns spent about a third of its CPU in that loop (benchmarks/README.md). The
project's ``templates/_table.html`` keeps Datasette's header row as it is and writes the
body with :func:`table_body`, which produces the same elements and attributes from the
same ``display_rows`` (class ``col-<css class of the column> type-<value type>``, the
cell's value escaped as Jinja's autoescape would: Markup as is, anything else escaped),
without the template's indentation.

Suppressed cells: a NULL in a column the row lists in ``suppressed_measures``, in a table
whose data package schema declares the ``--`` marker, is the publisher's suppression,
not an empty cell: it is written as ``<span class="suppressed" title="<the marker's
label>">--</span>`` (the label from /datapackage/datapackage.json). This used to be a
``render_cell`` hook, which Datasette calls once per cell of every page (a tenth of a
table page's time in the hook machinery alone); here it is one check per NULL cell.

``tests/test_table_body.py`` renders pages both ways and compares them element by
element; tests/test_site_hardening.py checks the marker.
"""

from __future__ import annotations

import functools
import json

from datasette import hookimpl
from datasette.utils import to_css_class
from markupsafe import Markup, escape

NBSP = Markup("&nbsp;")


@functools.lru_cache(maxsize=4096)
def _css(column: str) -> str:
    return str(escape(to_css_class(column)))


@functools.lru_cache(maxsize=4096)
def _measure_set(listed: str) -> frozenset:
    return frozenset(m.strip() for m in listed.split(","))


def suppressed_labels(datasette) -> dict[str, str]:
    """table -> label of the "--" marker, from the data package served at /datapackage/."""
    out: dict[str, str] = {}
    for mount, folder in getattr(datasette, "static_mounts", []) or []:
        if mount != "datapackage":
            continue
        try:
            with open(f"{folder}/datapackage.json", encoding="utf-8") as fh:
                package = json.load(fh)
        except (OSError, ValueError):
            break
        for resource in package.get("resources", []):
            for marker in (resource.get("schema") or {}).get("missingValues") or []:
                if isinstance(marker, dict) and marker.get("value") == "--":
                    out[resource["name"]] = marker.get("label") or "suppressed by the publisher"
    return out


def table_body(display_rows, table: str | None = None, labels: dict[str, str] | None = None) -> Markup:
    """``<tr><td class="col-… type-…">value</td>…</tr>`` for every row of ``display_rows``;
    ``table`` and ``labels`` (:func:`suppressed_labels`) mark the publisher's suppressions."""
    label = (labels or {}).get(table or "")
    marker = f'<span class="suppressed" title="{escape(label)}">--</span>' if label else None
    out = []
    add = out.append
    for row in display_rows:
        measures = frozenset()
        if marker:
            for cell in row:
                if cell["column"] == "suppressed_measures":
                    measures = _measure_set(str(cell["raw"])) if cell["raw"] else frozenset()
                    break
        add("<tr>")
        for cell in row:
            column = str(cell["column"])
            if measures and cell["raw"] is None and column in measures:
                value = marker
            else:
                value = escape(cell["value"])
            add(f'<td class="col-{_css(column)} type-{escape(cell["value_type"])}">{value}</td>')
        add("</tr>\n")
    return Markup("".join(out))


@hookimpl
def startup(datasette):
    labels = suppressed_labels(datasette)

    def cad_table_body(display_rows, table=None):
        return table_body(display_rows, table, labels)

    datasette.jinja_env.globals["cad_table_body"] = cad_table_body
