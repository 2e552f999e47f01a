"""The command line as its users expect: ``--version``, and output piped into ``head`` ends quietly."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

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
