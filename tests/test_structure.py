"""The package's import graph, computed from the source with ``ast``: no import cycle
anywhere in scripts/canada_asylum_data, and only the command-line modules import Click."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "scripts" / "canada_asylum_data"
NAME = "canada_asylum_data"
#: The modules that make up the command line; every other module is a stage or library.
CLI_MODULES = {f"{NAME}.cli", f"{NAME}.cli_support", f"{NAME}.cli_release", f"{NAME}.__main__"}


def module_name(path: Path) -> str:
    parts = [NAME, *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports (at any depth in the file, e.g. inside functions)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            out.add(base_name)
            out.update(f"{base_name}.{alias.name}" for alias in node.names)  # `from . import x`
    return out


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name}
            for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_sees_the_packages_imports():
    graph = import_graph()
    assert f"{NAME}.pipeline" in graph[f"{NAME}.cli"]
    assert f"{NAME}.cli_support" in graph[f"{NAME}.cli_release"]
    assert f"{NAME}.errors" in graph[f"{NAME}.package_io"]


def test_find_cycle_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_package():
    assert find_cycle(import_graph()) is None


def test_only_the_command_line_imports_click():
    offenders = sorted(module_name(p) for p in PACKAGE.rglob("*.py")
                       if module_name(p) not in CLI_MODULES
                       and any(m == "click" or m.startswith("click.") for m in imports_of(p)))
    assert offenders == []


def test_country_code_columns_come_from_the_schemas():
    """The normalize stage fills exactly the code columns whose schema field says
    ``from_label`` (no table knowledge in the code): every code column with a foreign key to
    countries that has a printed-label twin is declared so."""
    from canada_asylum_data.schemas import load_schemas

    schemas = load_schemas(PACKAGE.parent.parent / "datapackage" / "schemas")
    declared = {(name, code) for name, s in schemas.items() for _, code in s.country_columns}
    expected = set()
    for name, s in schemas.items():
        for fk in s.doc.get("foreign_keys") or []:
            code = fk["fields"][0]
            label = code.removesuffix("_code") + "_label"
            if fk["reference"]["resource"] == "countries" and label in s.field_names:
                expected.add((name, code))
    assert declared == expected and len(declared) >= 12
