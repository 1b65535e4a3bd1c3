"""Domain exceptions.

Every error the library raises on bad input is a :class:`CadError` carrying three parts,
so the CLI can print ``Error: <what>, <where>, <what to do>`` without a traceback.
"""

from __future__ import annotations


class CadError(Exception):
    """Base class: ``what`` went wrong, ``where`` (source id, file, sheet/row...), ``hint``."""

    default_hint = "run with --debug for details"

    def __init__(self, what: str, where: str | None = None, hint: str | None = None):
        self.what = what
        self.where = where
        self.hint = hint or self.default_hint
        super().__init__(self.message)

    def __reduce__(self):  # keep what/where/hint when sent between processes
        return (self.__class__, (self.what, self.where, self.hint))

    @property
    def message(self) -> str:
        parts = [self.what]
        if self.where:
            parts.append(self.where)
        parts.append(self.hint)
        return ", ".join(parts)


class ConfigError(CadError):
    default_hint = "fix the file named and run the command again"


class SourceError(CadError):
    """A raw file is missing, unreachable or fails its checksum."""

    default_hint = "check the source record in datapackage/sources.d/ and the mirror folder"


class ChecksumError(SourceError):
    default_hint = (
        "if the publisher really changed the file, review it and update sha256/bytes "
        "in its record in datapackage/sources.d/"
    )


class ParseError(CadError):
    """A raw file does not have the layout its parser expects."""

    default_hint = "the publisher may have changed the layout; update the parser for this source"


class PackageError(CadError):
    """A data package folder is missing or cannot be read."""

    default_hint = "run `canada-asylum-data package` first"


class ValidationError(CadError):
    default_hint = "run `canada-asylum-data validate` to see the full report"


class BuildError(CadError):
    default_hint = "run `canada-asylum-data package` first, then build again"
