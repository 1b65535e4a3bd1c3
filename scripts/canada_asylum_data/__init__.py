"""canada-asylum-data: official statistics on asylum claims in Canada, normalized into a
validated Frictionless data package, a SQLite database and a Datasette site."""

__version__ = "0.1.0"
