"""CLI behaviour: help with examples, clean errors, README coverage."""

from __future__ import annotations

import re

from click.testing import CliRunner

from canada_asylum_data.cli import cli

from .conftest import ROOT

COMMANDS = sorted(cli.commands)


def test_every_command_has_help_with_an_example():
    runner = CliRunner()
    for name in COMMANDS:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Example" in result.output, f"{name} --help has no example"


def test_long_commands_accept_silent():
    for name in ("fetch", "package", "validate", "build", "refresh", "serve", "metadata"):
        assert any(p.name == "silent" for p in cli.commands[name].params), name


def test_every_command_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for name in COMMANDS:
        assert f"canada-asylum-data {name}" in readme, f"README does not document `{name}`"


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = ci.strip().splitlines()[-1]
    assert command in readme


def test_missing_mirror_folder_is_a_clean_error(tmp_path):
    result = CliRunner().invoke(cli, ["--root", str(ROOT), "fetch", "--mirror", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: mirror folder not found, ")
    assert "Traceback" not in result.output


def test_no_package_is_a_clean_error(tmp_path):
    (tmp_path / "datapackage").mkdir()
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "build"])
    assert result.exit_code == 1
    assert re.match(r"Error: no data package found, .*datapackage.json, run `canada-asylum-data package` first",
                    result.output)


def test_fetch_only_an_unknown_source_is_an_error(tmp_path):
    result = CliRunner().invoke(cli, ["--root", str(ROOT), "fetch", "--only", "no-such-source",
                                      "--mirror", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: unknown source id(s) no-such-source, fetch --only, ")
    assert "sources.d" in result.output


def test_validate_without_frictionless_does_not_call_it_valid():
    result = CliRunner().invoke(cli, ["--root", str(ROOT), "validate", "--no-frictionless"])
    assert result.exit_code == 0, result.output
    assert "frictionless: not run;" in result.output
    assert "frictionless: valid" not in result.output
