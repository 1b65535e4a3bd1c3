"""Runs that are all-or-nothing and can be interrupted.

`refresh` runs as a subprocess (its own session) on a copy of a refreshed project whose
outputs are an older generation ("A": another package title and one more view), so that
old and new outputs differ in the package, metadata.yml and the database. The runs are
paused at a named stage by the test hook of runs.py (CANADA_ASYLUM_DATA_TEST_PAUSE) and
then killed (SIGKILL to the main process alone, the harshest case for its workers) or
interrupted (SIGINT to the whole group, as Ctrl-C does), or made to fail at a stage after
packaging (a view that does not compile, a simulated full disk). Each case checks: no
process of the run's group survives, the outputs are all old or all new, no temporary
file is left (after the next run for SIGKILL, which allows no clean-up), and the next
run succeeds with the new generation."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from canada_asylum_data.runs import FAIL_ENV, LOCK_WAIT_ENV, PAUSE_ENV, leftovers

EXE = Path(sys.executable).with_name("canada-asylum-data")
EXTRA_VIEW = """
  - name: zz_generation
    title: Which generation this is
    description: A view only the older generation of this test project has.
    sql: select 'A' as generation
"""
BAD_VIEW = """
  - name: zz_broken
    title: A view that does not compile
    description: Refers to a table that does not exist.
    sql: select * from no_such_table
"""


def outputs(root: Path) -> dict[str, str]:
    """SHA-256 of every output a refresh installs (the inspect file without its path)."""
    files = [root / "datapackage" / "datapackage.json", root / "metadata.yml",
             root / "build" / "canada_asylum.db", root / "build" / "build-stamp.json",
             *sorted((root / "datapackage" / "data").glob("*.csv"))]
    out = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    inspect = json.loads((root / "build" / "inspect-data.json").read_text())
    for db in inspect.values():
        db.pop("file", None)
    out["build/inspect-data.json"] = hashlib.sha256(json.dumps(inspect, sort_keys=True).encode()).hexdigest()
    return out


def replace_text(path: Path, text: str) -> None:
    """Write a new file (the project copies share unchanged files by hard links)."""
    path.unlink()
    path.write_text(text, encoding="utf-8")


def copy_tree(src: Path, dest: Path) -> Path:
    """datapackage/ and metadata.yml copied; build/ hard-linked (every write there is a
    new file renamed into place, so the template is never changed through a link)."""
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("build"))
    shutil.copytree(src / "build", dest / "build", symlinks=True, copy_function=os.link)
    return dest


def refresh_args(root: Path, mirror: Path, *extra: str) -> list[str]:
    return [str(EXE), "--root", str(root), "refresh", "--mirror", str(mirror), *extra]


def run_cli(args: list[str], env: dict | None = None, timeout: int = 600):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def generations(fresh, mirror, tmp_path_factory):
    """(template project holding generation A with the inputs of B, outputs of A, outputs
    of B). B is the committed inputs refreshed (the `fresh` project)."""
    new = outputs(fresh)
    root = copy_tree(fresh, tmp_path_factory.mktemp("generations") / "a")
    dp = root / "datapackage"
    package_yaml, views = (dp / "package.yaml").read_text(), (dp / "views.yml").read_text()
    replace_text(dp / "package.yaml", package_yaml.replace(
        "title: Asylum claims in Canada", "title: Older asylum claims in Canada", 1))
    replace_text(dp / "views.yml", views + EXTRA_VIEW)
    done = run_cli(refresh_args(root, mirror, "--silent"))
    assert done.returncode == 0, done.stderr
    replace_text(dp / "package.yaml", package_yaml)
    replace_text(dp / "views.yml", views)
    old = outputs(root)
    assert set(old) == set(new)
    differ = {name for name in old if old[name] != new[name]}
    assert {"datapackage/datapackage.json", "metadata.yml", "build/canada_asylum.db"} <= differ
    return root, old, new


@pytest.fixture
def project(generations, tmp_path):
    template, old, new = generations
    return copy_tree(template, tmp_path / "project"), old, new


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of the process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def no_survivors(pgid: int) -> list[int]:
    """The group's live members, after giving the kernel a moment to deliver the
    parent-death signals (an empty list is the pass)."""
    for _ in range(100):
        alive = group_members(pgid)
        if not alive:
            return []
        time.sleep(0.1)
    return alive


class Paused:
    """A refresh started in its own session and read until it reports the pause."""

    def __init__(self, args: list[str], stage: str, env: dict | None = None):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True,
                                     env={**os.environ, PAUSE_ENV: stage, **(env or {})})
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        marker = f"paused at {stage}"
        while not any(marker in line for line in self.lines):
            if self.proc.poll() is not None:
                self.reader.join(5)
                raise AssertionError(f"the run ended before {stage}: " + "".join(self.lines)[-3000:])
            time.sleep(0.1)

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def stop(self, sig: int) -> int:
        if sig == signal.SIGKILL:
            os.kill(self.proc.pid, sig)  # the main process alone: its workers must follow
        else:
            os.killpg(self.proc.pid, sig)  # Ctrl-C reaches the whole foreground group
        code = self.proc.wait(timeout=120)
        self.reader.join(10)
        return code


STAGES = {
    # stage: (how to reach it with processes worth killing, extra refresh options)
    "fetch": ("one raw file missing, so it is copied", ()),
    "parse": ("no parse cache, so the parse pool runs", ("--no-cache",)),
    "validate": ("no ledger, so the Frictionless pool runs", ()),
    "build": ("", ()),
}


def prepare(root: Path, stage: str) -> None:
    if stage == "fetch":
        raw = sorted((root / "build" / "raw").iterdir(), key=lambda p: p.stat().st_size)
        next(p for p in raw if p.name != "fetch-log.json").unlink()
    if stage == "validate":
        (root / "build" / "validated.json").unlink()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
@pytest.mark.parametrize("stage", list(STAGES))
def test_a_refresh_killed_at_a_stage_leaves_the_old_outputs_and_the_next_run_succeeds(
        project, mirror, stage, sig):
    root, old, new = project
    prepare(root, stage)
    run = Paused(refresh_args(root, mirror, *STAGES[stage][1]), stage)
    if stage in ("parse", "validate"):  # the pools are running: the kill must take them too
        assert len(group_members(run.proc.pid)) > 1
    code = run.stop(sig)
    assert no_survivors(run.proc.pid) == []
    assert outputs(root) == old  # all old
    assert not (root / "build" / "install.json").exists()
    if sig == signal.SIGINT:
        assert code == 130
        message = [line for line in run.lines if line.startswith("Error:")]
        assert len(message) == 1 and "interrupted" in message[0], "".join(run.lines)[-2000:]
        assert "Traceback" not in "".join(run.lines)
        assert leftovers(root) == []  # Ctrl-C cleans up at once
    else:
        assert code == -signal.SIGKILL
    done = run_cli(refresh_args(root, mirror, "--silent"))
    assert done.returncode == 0, done.stderr
    assert outputs(root) == new  # all new
    assert leftovers(root) == []


def test_a_kill_during_the_install_is_completed_by_the_next_command(project, mirror):
    """Killed after the install record was written and one file moved: the next command
    that takes the lock (here `serve --dry-run`) completes the install: all new."""
    root, old, new = project
    run = Paused(refresh_args(root, mirror), "install")
    run.stop(signal.SIGKILL)
    assert no_survivors(run.proc.pid) == []
    assert (root / "build" / "install.json").exists()  # mid-install: the record is kept
    done = run_cli([str(EXE), "--root", str(root), "serve", "--dry-run"])
    assert done.returncode == 0, done.stderr
    assert "completing the install" in done.stderr
    assert outputs(root) == new
    assert leftovers(root) == [] and not (root / "build" / "install.json").exists()


@pytest.mark.parametrize("case", ["bad view", "full disk during build", "full disk writing metadata"])
def test_a_refresh_failing_after_packaging_leaves_everything_old(project, mirror, case):
    root, old, new = project
    env = {}
    if case == "bad view":
        views = root / "datapackage" / "views.yml"
        replace_text(views, views.read_text() + BAD_VIEW)
        expected = "view zz_broken does not compile"
    elif case == "full disk during build":
        env[FAIL_ENV] = "build"
        expected = "cannot write the database (No space left on device"
    else:
        env[FAIL_ENV] = "metadata"
        expected = "cannot write metadata.yml (No space left on device"
    done = run_cli(refresh_args(root, mirror), env=env)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and expected in last, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert outputs(root) == old  # the package, metadata and database all old
    assert leftovers(root) == [] and not (root / "build" / "install.json").exists()


def test_an_install_that_fails_half_way_is_completed_by_the_next_run(project, mirror):
    root, old, new = project
    done = run_cli(refresh_args(root, mirror), env={FAIL_ENV: "install"})
    assert done.returncode == 1
    assert "partly installed" in done.stderr and "run any command again" in done.stderr
    assert (root / "build" / "install.json").exists()
    again = run_cli([str(EXE), "--root", str(root), "build"])
    assert again.returncode == 0, again.stderr
    assert outputs(root) == new
    assert leftovers(root) == []


def test_a_second_run_waits_for_the_lock_then_says_so(project):
    root, _, _ = project
    with open(root / "build" / ".lock", "w") as fh:
        fh.write("4242\n")
        fh.flush()
        fcntl.flock(fh, fcntl.LOCK_EX)
        done = run_cli([str(EXE), "--root", str(root), "build"], env={LOCK_WAIT_ENV: "1"})
    assert done.returncode == 1
    assert "waiting for another run (pid 4242)" in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: another run (pid 4242) is writing this project"), done.stderr
    assert LOCK_WAIT_ENV in last


def test_concurrent_metadata_runs_take_turns(project):
    root, old, _ = project
    procs = [subprocess.Popen([str(EXE), "--root", str(root), "metadata", "--silent"],
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert [code for code, _ in results] == [0, 0, 0], results
    assert leftovers(root) == []


def test_stale_temporary_files_of_a_dead_run_are_deleted_by_the_next(project):
    root, old, _ = project
    planted = [root / "datapackage" / ".staging-dead", root / "build" / ".build-dead",
               root / "build" / "raw" / ".x.abc.part", root / ".metadata.yml.abc.part"]
    for path in planted:
        if path.suffix == ".part":
            path.write_text("half")
        else:
            (path / "data").mkdir(parents=True)
            (path / "data" / "t.csv").write_text("a\n")
    assert leftovers(root) == sorted(planted)
    # any command that takes the lock sweeps; validate writes no output
    done = run_cli([str(EXE), "--root", str(root), "validate", "--no-frictionless", "--silent"])
    assert done.returncode == 0, done.stderr
    assert leftovers(root) == []
    assert outputs(root) == old


@pytest.mark.parametrize("damage", ["truncated", "edited"])
def test_serve_rebuilds_a_database_that_is_not_the_one_its_stamp_describes(project, damage):
    root, _, _ = project
    built = run_cli([str(EXE), "--root", str(root), "build", "--silent"])  # current with the inputs
    assert built.returncode == 0, built.stderr
    good = outputs(root)
    db = root / "build" / "canada_asylum.db"
    data = db.read_bytes()
    db.unlink()  # a new file: the template shares the old one through a hard link
    if damage == "truncated":
        db.write_bytes(data[: len(data) // 2])
    else:
        db.write_bytes(data[:-100] + b"x" * 100)
    done = run_cli([str(EXE), "--root", str(root), "serve", "--dry-run"])
    assert done.returncode == 0, done.stderr
    assert "not the file its build stamp describes" in done.stderr
    assert outputs(root) == good
