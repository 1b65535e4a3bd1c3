"""serve, publish and export render one description of the site (site.py): the same
settings, metadata, plugins, templates and static mounts, /datapackage/ included."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from canada_asylum_data.database import build_database
from canada_asylum_data.export import SERVE_SCRIPT, export
from canada_asylum_data.paths import Paths
from canada_asylum_data.site import SETTINGS, describe, publish_command, serve_command

from .conftest import ROOT


def parse(cmd: list[str], root: Path) -> dict:
    """What a datasette serve/publish command sets up, folders resolved against ``root``."""
    out = {"settings": {}, "static": {}, "install": [], "plugins": None, "templates": None,
           "metadata": None}
    args = list(cmd)
    if "--extra-options" in args:  # cloudrun: the settings travel as one string
        i = args.index("--extra-options")
        args[i:i + 2] = shlex.split(args[i + 1])
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--setting":
            out["settings"][args[i + 1]] = args[i + 2]
            i += 3
            continue
        if arg == "--static":
            mount, folder = args[i + 1].split(":", 1)
            out["static"][mount] = (root / folder).resolve()
        elif arg == "--install":
            out["install"].append(args[i + 1])
        elif arg == "--plugins-dir":
            out["plugins"] = (root / args[i + 1]).resolve()
        elif arg == "--template-dir":
            out["templates"] = (root / args[i + 1]).resolve()
        elif arg == "--metadata":
            out["metadata"] = (root / args[i + 1]).resolve()
        i += 1
    return out


def same_tree(a: Path, b: Path) -> bool:
    files = lambda d: {p.relative_to(d).as_posix(): p.read_bytes() for p in d.rglob("*")  # noqa: E731
                       if p.is_file() and "__pycache__" not in p.parts}
    return files(a) == files(b)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Paths:
    """A project with every part of a site: a small data package, plugins, templates, static."""
    root = tmp_path_factory.mktemp("site")
    dp = root / "datapackage"
    (dp / "data").mkdir(parents=True)
    shutil.copytree(ROOT / "datapackage" / "schemas", dp / "schemas")
    (dp / "data" / "t.csv").write_text("a,b\nx,1\n")
    (dp / "datapackage.json").write_text(
        '{"name": "p", "version": "2026.01.01", "resources": [{"name": "t", "path": "data/t.csv", '
        '"schema": {"fields": [{"name": "a", "type": "string"}, {"name": "b", "type": "integer"}],'
        ' "primaryKey": ["a"]}}]}\n')
    (dp / "views.yml").write_text("views: []\n")
    for name in ("plugins", "templates", "static"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / "metadata.yml").write_text("title: test\n")
    paths = Paths(root)
    build_database(dp, paths.db, paths.views)
    return paths


def test_serve_publish_and_export_agree(project, tmp_path):
    site = describe(project)
    served = parse(serve_command(site, "127.0.0.1", 8001), Path("/"))
    published = {platform: parse(publish_command(site, platform, "svc", "note"), project.root)
                 for platform in ("cloudrun", "fly")}
    written = export(project, tmp_path / "export")
    script = (tmp_path / "export" / SERVE_SCRIPT).read_text()
    exec_line = next(line for line in script.splitlines() if line.startswith("exec "))
    exported = parse(shlex.split(exec_line)[1:], tmp_path / "export")

    # The one description holds every part, /datapackage/ included.
    assert set(served["static"]) == {"static", "datapackage"}
    assert served["static"]["datapackage"] == project.datapackage.resolve()
    assert served["plugins"] and served["templates"] and served["metadata"]
    for name, other in [*published.items(), ("export", exported)]:
        assert other["settings"] == served["settings"] == SETTINGS, name
        assert set(other["static"]) == set(served["static"]), name
        for key in ("plugins", "templates", "metadata"):
            assert (other[key] is None) == (served[key] is None), (name, key)
    for name, other in published.items():
        # publish runs in the project folder: the same folders as serve
        assert other["static"] == served["static"], name
        assert (other["plugins"], other["templates"], other["metadata"]) == \
            (served["plugins"], served["templates"], served["metadata"]), name
        assert other["install"] == list(site.plugins), name
    # The export holds a copy of every folder and file the served site uses.
    for mount, folder in served["static"].items():
        assert same_tree(folder, exported["static"][mount]), mount
    assert same_tree(served["plugins"], exported["plugins"])
    assert same_tree(served["templates"], exported["templates"])
    assert exported["metadata"].read_bytes() == served["metadata"].read_bytes()
    assert "pip install" in script and all(p in script for p in site.plugins)
    assert "README.md" in written and SERVE_SCRIPT in (tmp_path / "export" / "README.md").read_text()


def test_publish_dry_run_mounts_the_data_package(project):
    from click.testing import CliRunner

    from canada_asylum_data.cli import cli

    result = CliRunner().invoke(cli, ["--root", str(project.root), "publish", "--dry-run", "--silent"])
    assert result.exit_code == 0, result.output
    cmd = shlex.split(result.output.strip())
    assert cmd[cmd.index("datapackage:datapackage") - 1] == "--static"


def test_the_workers_build_the_site_serve_describes(project):
    """`serve --workers N` hands its worker processes exactly the `datasette serve`
    arguments of the one description."""
    import json
    import sys

    from canada_asylum_data.site import SERVE_ARGS_ENV, workers_command

    site = describe(project, {"base_url": "/asylum/"})
    env, cmd = workers_command(site, "0.0.0.0", 8009, 4)
    served = serve_command(site, "0.0.0.0", 8009)
    assert served[1:4] == ["-m", "datasette", "serve"]
    assert json.loads(env[SERVE_ARGS_ENV]) == served[4:]
    assert parse(json.loads(env[SERVE_ARGS_ENV]), Path("/"))["settings"] == {**SETTINGS, "base_url": "/asylum/"}
    assert cmd == [sys.executable, "-m", "uvicorn", "canada_asylum_data.asgi:app", "--factory", "--workers", "4",
                   "--lifespan", "on", "--host", "0.0.0.0", "--port", "8009"]
