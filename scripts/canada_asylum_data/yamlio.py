"""YAML reading for the project's input files (the C loader when PyYAML has it), safely.

Every input file (sources.yml and sources.d, schemas, aliases, views, queries, package,
definitions, events, categories) goes through :func:`read_yaml` or :func:`load_yaml`:

* a file larger than :data:`MAX_YAML_BYTES` is refused before it is read;
* aliases (``*name``) are refused: none of the project's files uses them, and a few lines
  of nested aliases (a "billion laughs") expand to billions of values in whatever walks
  the result (a refresh hung on one in sources.d; one in a schema's caveats took 2.8 GB).
  The document is composed into nodes first (libyaml bounds the nesting depth itself);
  a node reached twice is an alias, and nothing is constructed from such a document.
  Anchors alone (``&name``) are harmless and pass.

Both raise :class:`~.errors.ConfigError` naming the file (and the line of the alias);
a syntax error is still a ``yaml.YAMLError``, which each caller words for its file.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .errors import ConfigError

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Largest YAML input file accepted (the largest real one, sources.d/irb.yml, is 45 KiB).
MAX_YAML_BYTES = 2 << 20


class _LineLoader(_LOADER):
    """Records the line each mapping and list starts on (for error messages)."""

    lines: dict[int, int]

    def construct_object(self, node, deep=False):
        data = super().construct_object(node, deep)
        if isinstance(data, (dict, list)):
            self.lines[id(data)] = node.start_mark.line + 1
        return data


def load_yaml(text: str, where: str | Path | None = None, lines: dict[int, int] | None = None):
    """Like yaml.safe_load (raises yaml.YAMLError), but refuses oversized text and aliases
    (ConfigError naming ``where``), and is faster where libyaml is built in. With
    ``lines``, it is filled with id(mapping or list) -> the line it starts on (valid while
    the result lives)."""
    where = str(where) if where else "a YAML input"
    if len(text) > MAX_YAML_BYTES:
        raise _too_large(len(text), where)
    if lines is not None:
        loader = _LineLoader(text)
        loader.lines = lines
    else:
        loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _has_alias(node):
            raise _alias_error(text, where)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(path: Path, lines: dict[int, int] | None = None):
    """:func:`load_yaml` of a file, its size checked before it is read (OSError and
    yaml.YAMLError pass through for the caller to word)."""
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise _too_large(size, str(path))
    return load_yaml(path.read_text(encoding="utf-8"), path, lines)


def _too_large(size: int, where: str) -> ConfigError:
    return ConfigError(f"the YAML file is {size:,} bytes, more than the {MAX_YAML_BYTES:,} a "
                       "project input file may be (MAX_YAML_BYTES)", where,
                       "check that it is the right file; split a genuinely large one")


def _has_alias(root: yaml.Node) -> bool:
    """True when some node is reached twice: what an alias composes to."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            return True
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append(key)
                stack.append(value)
    return False


def _alias_error(text: str, where: str) -> ConfigError:
    line, name = None, "?"
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            line, name = event.start_mark.line + 1, event.anchor
            break
    return ConfigError(
        f"YAML alias *{name} (aliases are not accepted in project input files: nested ones "
        "expand to billions of values)", f"{where}" + (f" line {line}" if line else ""),
        "write the value out in full instead of the &anchor / *alias pair")
