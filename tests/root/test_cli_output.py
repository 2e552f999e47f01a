"""The command line as its users expect: ``--version``, output piped into ``head`` ends quietly, help
for every option, a progress line on a terminal only, and no HTTP client chatter in a long command."""

from __future__ import annotations

import argparse
import io
import logging
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.root.cli import HTTP_CLIENT_LOGGERS, build_parser, main
from gateway.root.progress import Progress

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "gateway.root.cli"]


def test_version_is_the_installed_one() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    out = subprocess.run([*CLI, "--version"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"gridgate {declared}", out


def test_output_piped_into_a_reader_that_stops_early_ends_without_a_traceback(tmp_path: Path) -> None:
    # A configuration with thousands of problems: `gridgate check` prints a line for each.
    lines = ['[[grids]]\nid = "g1"\nname = "g"\narea = "4309"\nofficers = ["nobody"]\n']
    lines += [f'[[enterprises]]\nid = "e{i}"\nname = "e"\ngrid = "nowhere"\nlead_department = "none"\n'
              for i in range(3000)]
    bad = tmp_path / "bad.toml"
    bad.write_text("".join(lines), encoding="utf-8")
    # like `gridgate check -c bad.toml | head -1`: read one line, then close the pipe
    proc = subprocess.Popen([*CLI, "check", "-c", str(bad)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    code = proc.wait(timeout=60)
    assert first.startswith(str(bad).encode()) and b"does not exist" in first
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert code == 1


def test_every_option_and_argument_of_every_subcommand_has_help() -> None:
    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> int:
        seen = 0
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                missing.extend(f"{path} {c.dest}" for c in action._choices_actions if not c.help)
                seen += sum(walk(sub, f"{path} {name}") for name, sub in action.choices.items())
                continue
            seen += 1
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
        return seen

    seen = walk(build_parser(), "gridgate")
    assert missing == [], f"without help: {missing}"
    assert seen > 80  # every subcommand was built and walked (sim, bench, export, import, registry take-file...)
    names = {a.dest for a in build_parser()._actions}
    assert {"verbose", "version"} <= names


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_the_progress_line_is_rewritten_in_place_throttled_and_only_on_a_terminal() -> None:
    tty, clock = FakeTerminal(), Clock()
    with Progress("bench x", 1000, "readings", stream=tty, interval=0.25, clock=clock) as p:
        for i in range(0, 1001, 10):  # 101 updates over 1 s of the clock
            p.show(i, "detail")
            clock.t += 0.01
        written = tty.getvalue()
    lines = written.split("\r")[1:]
    assert lines[0] == "bench x: 0/1,000 readings (0 %)  detail  0 s"
    assert lines[-1] == "bench x: 1,000/1,000 readings (100 %)  detail  1 s"
    assert len(lines) == 5  # every 0.25 s of 1 s: at most 4 a second, never each of the 101 updates
    assert "\n" not in written  # one line, rewritten
    assert tty.getvalue()[len(written):] == "\r" + " " * len(lines[-1]) + "\r"  # blanked on exit
    # a shorter line blanks what the longer one before it left
    tty2, clock2 = FakeTerminal(), Clock()
    p2 = Progress("x", stream=tty2, clock=clock2)
    p2.show(123456, "a long detail")
    clock2.t += 1
    p2.show(1)
    first, second = tty2.getvalue().split("\r")[1:]
    assert len(second) == len(first) and second.rstrip() == "x: 1  1 s"
    # a log line meanwhile (a benchmark's gateway logs) starts on a blanked line, not after the progress
    tty3 = FakeTerminal()
    handler = logging.StreamHandler(tty3)
    logging.getLogger().addHandler(handler)
    try:
        with Progress("y", stream=tty3, clock=Clock()) as p4:
            p4.show(7)
            logging.getLogger("gridgate.test").warning("a state change")
    finally:
        logging.getLogger().removeHandler(handler)
    assert tty3.getvalue() == "\ry: 7  0 s\r" + " " * len("y: 7  0 s") + "\ra state change\n"
    assert not handler.filters  # the filter leaves with the progress line
    # not a terminal: nothing at all, not even on clear
    piped = io.StringIO()
    with Progress("bench x", 10, stream=piped, clock=clock) as p3:
        for i in range(10):
            p3.show(i, force=True)
            clock.t += 1
    assert piped.getvalue() == ""


def make_store(tmp_path: Path, n: int) -> Path:
    from gateway.batch import ReadingBatch
    from tests.gateway.test_export import example_store

    cfg, reg, store = example_store(tmp_path)
    t0 = 1_767_225_600 * 10**9
    store.write(ReadingBatch.of([reg.sensor_index(SENSOR)] * n, [t0 + i * 10**9 for i in range(n)],
                                [float(i % 50) for i in range(n)]))
    store.close()
    return cfg


SENSOR = "hengyuan-chem/gas-ctrl-1/ch4"


def test_export_shows_the_readings_written_on_a_terminal_and_nothing_when_piped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_store(tmp_path, 3000)
    tty = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", tty)
    target = tmp_path / "ch4.csv"
    assert main(["export", "-c", str(cfg), "--sensor", SENSOR, "-o", str(target)]) == 0
    err = tty.getvalue()
    assert err.startswith("\rexport: 0 readings") and "\n" not in err.rstrip("\n")
    # the command's own message starts on a blanked line, never at the end of the progress line
    assert err.endswith(f"\rexported 3000 readings of {SENSOR}\n")
    assert len(target.read_text(encoding="utf-8").splitlines()) == 1 + 3000
    # to standard output, piped: the same file, and nothing but the message on standard error
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    capsys.readouterr()
    assert main(["export", "-c", str(cfg), "--sensor", SENSOR]) == 0
    assert capsys.readouterr().out == target.read_text(encoding="utf-8")
    assert sys.stderr.getvalue() == f"exported 3000 readings of {SENSOR}\n"
    # a refused sensor leaves an existing file as it was
    monkeypatch.setattr(sys, "stderr", FakeTerminal())
    assert main(["export", "-c", str(cfg), "--sensor", "hengyuan-chem/nope/x", "-o", str(target)]) == 2
    assert len(target.read_text(encoding="utf-8").splitlines()) == 1 + 3000


@pytest.fixture
def logger_levels() -> Iterator[None]:
    """main() sets the levels of the HTTP client loggers (and pymodbus'): put them back after."""
    names = (*HTTP_CLIENT_LOGGERS, "pymodbus")
    saved = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("logger_levels")
def test_a_long_command_keeps_http_client_logging_out_of_its_output(
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.INFO)
    # bench store talks to a real influxd over httpx (CREATE DATABASE, /write), each request logged at INFO
    assert main(["bench", "store", "--readings", "2000", "--batch", "500", "--sensors", "10", "--json"]) == 0
    out = capsys.readouterr()
    assert '"raw_influx_write_per_s"' in out.out
    said = [r.getMessage() for r in caplog.records] + out.err.splitlines() + out.out.splitlines()
    assert not [line for line in said if "HTTP Request:" in line]
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
    # with -v they are back: the debug logging a user asked for
    assert main(["-v", "check", "-c", str(ROOT / "gridgate.example.toml")]) == 0
    assert all(logging.getLogger(name).level == logging.NOTSET for name in HTTP_CLIENT_LOGGERS)
