"""YAML reading for the project's input files (the C loader when PyYAML has it)."""

from __future__ import annotations

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str):
    """Like yaml.safe_load (raises yaml.YAMLError), but faster where libyaml is built in."""
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader
