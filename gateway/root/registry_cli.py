"""``gridgate import``, ``gridgate export-registry`` and ``gridgate registry take-file``: the registry
database of a data folder, from the command line (a running gateway takes the new version within
seconds: it follows ``registry.db``).

- ``import REGISTER...``: the registers (grids, enterprises or devices; CSV or .xlsx) as one change,
  all or nothing, grids before enterprises before devices; ``--dry-run`` says what would change.
  Exit status 1 with every problem, by file, row and column.
- ``export-registry``: the registers as files (``grids.csv``, ``enterprises.csv``, ``devices.csv``).
- ``registry take-file``: make the registry what the configuration file says (an audited change
  that retires what the file no longer has).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from gateway.config import Config
from gateway.errors import GridgateError
from gateway.register import imports
from gateway.register.service import open_service
from gateway.register.tabular import TableError


def add_import_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, help="the gateway's configuration file")
    p.add_argument("--data-dir", help="override [gateway] data_dir (where registry.db is)")
    p.add_argument("--dry-run", action="store_true", help="validate and say what would change; change nothing")
    p.add_argument("--actor", default="cli", help="who the audit trail names (default: cli)")
    p.add_argument("registers", nargs="+", metavar="REGISTER",
                   help="a grids, enterprises or devices register: .csv (UTF-8 or GBK) or .xlsx")


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, help="the gateway's configuration file")
    p.add_argument("--data-dir", help="override [gateway] data_dir (where registry.db is)")
    p.add_argument("--out", default=".", help="folder to write the registers to (default: here)")
    p.add_argument("--format", choices=imports.FORMATS, default="csv", help="csv (UTF-8 with BOM) or xlsx")
    p.add_argument("--english", action="store_true", help="English column names instead of Chinese")
    p.add_argument("--kind", choices=imports.KINDS, action="append",
                   help="only this register (repeatable; default: all three)")


def add_take_file_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, help="the configuration file whose registry to take")
    p.add_argument("--data-dir", help="override [gateway] data_dir (where registry.db is)")


def _data_dir(args: argparse.Namespace, cfg: Config) -> Path:
    path = Path(args.data_dir or cfg.gateway.data_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_import(args: argparse.Namespace, cfg: Config) -> int:
    service, _, _ = open_service(_data_dir(args, cfg), cfg)
    files: list[tuple[bytes, str]] = []
    for name in args.registers:
        try:
            files.append((Path(name).read_bytes(), name))
        except OSError as exc:
            print(f"{name}: cannot read: {exc.strerror}", file=sys.stderr)
            return 1
    try:
        result = asyncio.run(service.import_registers(files, args.actor, dry_run=args.dry_run))
    except TableError as exc:
        prefix = f"{files[0][1]}: " if len(files) == 1 else ""
        for problem in exc.problems:
            print(f"{prefix}{problem}", file=sys.stderr)
        print(f"refused, nothing imported ({len(exc.problems)} problem(s))", file=sys.stderr)
        return 1
    except GridgateError as exc:
        print(f"refused, nothing imported: {exc}", file=sys.stderr)
        return 1
    finally:
        service.store.close()
    print(_said(result))
    return 0


def _said(result: imports.ImportResult) -> str:
    def counts(d: dict[str, list[str]]) -> str:
        return ", ".join(f"{len(keys)} {section}" for section, keys in d.items() if keys) or "nothing"

    verb = ("would create", "would replace") if result.dry_run else ("created", "replaced")
    done = f"{verb[0]} {counts(result.created)}; {verb[1]} {counts(result.replaced)}; {result.unchanged} unchanged"
    return f"{result.kind} register: {done}" + (" (dry run: nothing changed)" if result.dry_run else
                                                f"; registry version {result.version}" if result.version else "")


def run_export(args: argparse.Namespace, cfg: Config) -> int:
    service, _, _ = open_service(_data_dir(args, cfg), cfg)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        for kind in args.kind or imports.KINDS:
            try:
                data = imports.export(kind, service.items, args.format, chinese=not args.english)
            except TableError as exc:
                for problem in exc.problems:
                    print(f"{kind}: {problem}", file=sys.stderr)
                return 1
            path = out / f"{kind}.{args.format}"
            path.write_bytes(data)
            print(f"{path}: {kind} register, registry version {service.version}")
    finally:
        service.store.close()
    return 0


def run_take_file(args: argparse.Namespace, cfg: Config) -> int:
    service, registry, note = open_service(_data_dir(args, cfg), cfg, take_file=True)
    service.store.close()
    print(f"registry version {registry.version}: {note}")
    return 0
