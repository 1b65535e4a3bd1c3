"""One stage of the pipeline as its own process, to time it from outside side by side
with another version of the code (figures, not tests).

    python benchmarks/stages.py build  [--root DIR]   # datapackage/ -> a temporary .db
    python benchmarks/stages.py render [--root DIR]   # parse (cached) + render every CSV in memory

Compare two versions of the code with any whole-process timer, e.g. hyperfine:

    git archive <old-rev> scripts | tar -x -C /tmp/old
    hyperfine 'PYTHONPATH=/tmp/old/scripts python benchmarks/stages.py build' \\
              'python benchmarks/stages.py build'

``render`` needs build/raw/ and the parse cache filled (run `canada-asylum-data refresh`
once); it times what `package` does after parsing, with the workers setting the code of
that version uses.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(root: Path) -> None:
    from canada_asylum_data.database import build_database

    with tempfile.TemporaryDirectory() as tmp:
        build_database(root / "datapackage", Path(tmp) / "bench.db", root / "datapackage" / "views.yml")


def render(root: Path) -> None:
    from canada_asylum_data.cache import ParseCache
    from canada_asylum_data.fetch import present_raw_files
    from canada_asylum_data.normalize import normalize
    from canada_asylum_data.package import render_all
    from canada_asylum_data.schemas import load_schemas
    from canada_asylum_data.sources import load_all_sources

    dp = root / "datapackage"
    sources = load_all_sources(dp)
    raw = present_raw_files(sources, root / "build" / "raw")
    tables = normalize(sources, raw, dp, cache=ParseCache(root / "build" / "cache" / "parsed")).tables
    render_all(load_schemas(dp / "schemas"), tables)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["build", "render"])
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args()
    {"build": build, "render": render}[args.stage](args.root)


if __name__ == "__main__":
    main()
