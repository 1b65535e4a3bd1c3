"""Where things live. The project root is the folder holding ``datapackage/``: the
current directory if it has one, else the checkout this package was installed from."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .package_io import DESCRIPTOR

MIRROR_ENV = "CANADA_ASYLUM_DATA_MIRROR"
DB_NAME = "canada_asylum.db"


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def datapackage(self) -> Path:
        return self.root / "datapackage"

    @property
    def descriptor(self) -> Path:
        return self.datapackage / DESCRIPTOR

    @property
    def build(self) -> Path:
        return self.root / "build"

    @property
    def raw(self) -> Path:
        return self.build / "raw"

    @property
    def db(self) -> Path:
        return self.build / DB_NAME

    @property
    def inspect_file(self) -> Path:
        return self.build / "inspect-data.json"

    @property
    def parse_cache(self) -> Path:
        return self.build / "cache" / "parsed"

    @property
    def ledger(self) -> Path:
        return self.build / "validated.json"

    @property
    def metadata(self) -> Path:
        return self.root / "metadata.yml"

    @property
    def views(self) -> Path:
        return self.datapackage / "views.yml"

    @property
    def default_mirror(self) -> Path:
        env = os.environ.get(MIRROR_ENV)
        return Path(env) if env else self.root.parent / "shared" / "sources"


def find_root(start: Path | None = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "datapackage" / "sources.yml").is_file():
            return candidate
    installed = Path(__file__).resolve().parents[2]
    return installed
