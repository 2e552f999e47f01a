"""The ``gridgate`` command line: run, demo, check, hash-password, mqtt-auth, import, export-registry,
registry, export, sim and bench.

Each subcommand is a small function; heavy imports happen inside them so that ``gridgate check``
stays fast and needs nothing but the configuration models.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.config import Config


def _check(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.errors import ConfigError
    from gateway.registry import Registry

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        for path, msg in exc.problems:
            print(f"{args.config}: {path}: {msg}")
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    reg = Registry(cfg)
    print(f"{args.config}: ok: {len(cfg.grids)} grids, {len(cfg.enterprises)} enterprises, "
          f"{len(reg.devices)} devices, {len(reg)} sensors, {len(cfg.users)} users")
    return 0


def _hash_password(args: argparse.Namespace) -> int:
    """An argon2id hash with the parameters the gateway gives new passwords (``[api] hash_*``)."""
    from gateway.accounts.passwords import HashParams
    from gateway.config import ApiSection

    api = load_or_exit(args.config).api if args.config else ApiSection()
    hasher = HashParams(api.hash_memory_kib, api.hash_time_cost).hasher()
    if sys.stdin.isatty():
        pw = getpass.getpass("password: ")
        if getpass.getpass("again: ") != pw:
            print("the passwords differ", file=sys.stderr)
            return 1
    else:
        pw = sys.stdin.readline().rstrip("\r\n")
    if not pw:
        print("an empty password is refused", file=sys.stderr)
        return 1
    print(hasher.hash(pw))
    return 0


def _mqtt_auth(args: argparse.Namespace) -> int:
    from gateway.root import mqtt_auth

    return mqtt_auth.run(args, load_or_exit(args.config))


def load_or_exit(path: str, compact: bool = False) -> Config:
    """The configuration at ``path``; else every problem on standard error, and exit status 2.
    ``compact`` (a long-running gateway): parse a large file in a child (gateway/root/loading.py)."""
    from gateway.config import load_config
    from gateway.errors import ConfigError
    from gateway.root.loading import load_compact

    try:
        return load_compact(path) if compact else load_config(path)
    except ConfigError as exc:
        for key, msg in exc.problems:
            print(f"{path}: {key}: {msg}", file=sys.stderr)
        raise SystemExit(2) from exc


def _run(args: argparse.Namespace) -> int:
    from api.server import serve_api
    from gateway.root.runtime import Gateway

    cfg = load_or_exit(args.config, compact=True)
    gw = Gateway(cfg, data_dir=args.data_dir)

    async def api(g: Gateway) -> None:
        await serve_api(g, cfg.api.host, cfg.api.port)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task] = set()

        def reload() -> None:  # SIGHUP: read the file again, apply all of it or nothing
            task = loop.create_task(gw.reload_file(args.config))
            pending.add(task)
            task.add_done_callback(pending.discard)

        loop.add_signal_handler(signal.SIGHUP, reload)
        await gw.run(api=api)

    return _run_until_signal(main())


def _run_until_signal(main: Coroutine[Any, Any, Any]) -> int:
    """Run ``main``; SIGTERM and SIGINT cancel it, so that queues drain and stores close."""

    async def guarded() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            result = await main
        except asyncio.CancelledError:
            return 0
        return int(result or 0)

    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(guarded())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from gateway.root.demo import run_demo

    return _run_until_signal(run_demo(args))


def _sim(args: argparse.Namespace) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(args.sim_run(args))
    return 0


def _bench(args: argparse.Namespace) -> int:
    return args.bench_run(args)


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (its first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gridgate")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


class _Version(argparse.Action):
    """``--version``: looked up only when asked (importlib.metadata is not cheap to import)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"gridgate {_version()}")
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; the options of ``sim``, ``bench`` and ``export`` are only built (and their modules,
    with pymodbus, paho and numpy, only imported) when ``command`` is that one or None (all)."""
    p = argparse.ArgumentParser(prog="gridgate", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true",
                   help="debug logging, HTTP client requests included")
    p.add_argument("--version", action=_Version, help="print the installed version and exit")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="validate a configuration file and print every problem")
    c.add_argument("-c", "--config", required=True, help="the configuration file to check (TOML)")
    c.set_defaults(func=_check)

    h = sub.add_parser("hash-password", help="read a password (stdin or prompt), print its argon2 hash")
    h.add_argument("-c", "--config", help="hash with this configuration's [api] hash_memory_kib and hash_time_cost")
    h.set_defaults(func=_hash_password)

    m = sub.add_parser("mqtt-auth", help="Mosquitto password and ACL files: a login per enterprise, officer, "
                                         "department and the gateway")
    m.add_argument("-c", "--config", required=True, help="the gateway's configuration file (TOML)")
    m.add_argument("--out", required=True, help="folder for passwd, acl and credentials")
    m.add_argument("--rotate", nargs="*", metavar="LOGIN",
                   help="new passwords: for every login, or only for the logins named")
    m.set_defaults(func=_mqtt_auth)

    r = sub.add_parser("run", help="run the gateway from a configuration file")
    r.add_argument("-c", "--config", required=True, help="the gateway's configuration file (TOML)")
    r.add_argument("--data-dir", help="override [gateway] data_dir")
    r.set_defaults(func=_run)

    d = sub.add_parser("demo", help="a simulated district, an embedded broker, the gateway and the API")
    d.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
    d.add_argument("--host", default="127.0.0.1", help="API address to listen on (default 127.0.0.1)")
    d.add_argument("--mqtt-url", help="use this broker instead of the embedded one")
    d.add_argument("--data-dir", help="keep the data here (default: a temporary folder)")
    d.add_argument("--for", dest="duration", type=float, help="stop after SECONDS, print a JSON summary")
    d.set_defaults(func=_demo)

    i = sub.add_parser("import", help="import grids, enterprises or devices registers (CSV, .xlsx) into the "
                                      "registry, all or nothing")
    x = sub.add_parser("export-registry", help="write the registry as grids, enterprises and devices registers")
    t = sub.add_parser("registry", help="the registry database")
    if command in (None, "import", "export-registry", "registry"):
        _registry_arguments(i, x, t)

    e = sub.add_parser("export", help="one sensor's readings as CSV or InfluxDB line protocol")
    s = sub.add_parser("sim", help="sensor simulators")
    b = sub.add_parser("bench", help="benchmarks")
    if command in (None, "export"):
        _export_arguments(e)
    if command in (None, "sim"):
        _sim_arguments(s)
    if command in (None, "bench"):
        _bench_arguments(b)
    return p


def _registry_arguments(i: argparse.ArgumentParser, x: argparse.ArgumentParser, t: argparse.ArgumentParser) -> None:
    from gateway.root import registry_cli

    registry_cli.add_import_arguments(i)
    i.set_defaults(func=lambda args: registry_cli.run_import(args, load_or_exit(args.config)))
    registry_cli.add_export_arguments(x)
    x.set_defaults(func=lambda args: registry_cli.run_export(args, load_or_exit(args.config)))
    tsub = t.add_subparsers(dest="registry", required=True)
    tf = tsub.add_parser("take-file", help="make the registry what the configuration file says (audited)")
    registry_cli.add_take_file_arguments(tf)
    tf.set_defaults(func=lambda args: registry_cli.run_take_file(args, load_or_exit(args.config)))


def _export_arguments(e: argparse.ArgumentParser) -> None:
    from gateway.storage import export

    export.add_arguments(e)
    e.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    """``gridgate export``; on a terminal, the readings written so far on a progress line (not when
    the readings themselves go to that terminal: the line would be torn through them)."""
    from gateway.root.progress import ClearingStream, CountingOutput, Progress, is_terminal
    from gateway.storage import export

    cfg = load_or_exit(args.config)
    if not is_terminal(sys.stderr) or (args.output is None and is_terminal(sys.stdout)):
        return export.run(args, cfg)
    # export.run writes to standard output when it has no -o: hand it a counting stream there
    with Progress("export", unit="readings") as progress:
        skip = 1 if args.format == "csv" else 0  # the CSV header
        out = CountingOutput(progress, path=args.output, out=None if args.output else sys.stdout, skip=skip)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(ClearingStream(sys.stderr, progress)):
                code = export.run(argparse.Namespace(**{**vars(args), "output": None}), cfg)
        except BaseException:
            out.close(make=False)
            raise
        out.close(make=code == 0)  # an empty range still makes its empty file, as without the progress line
    return code


def _sim_arguments(s: argparse.ArgumentParser) -> None:
    from simulators import modbus_farm, mqtt_fleet

    ssub = s.add_subparsers(dest="sim", required=True)
    sm = ssub.add_parser("modbus", help="a Modbus TCP device farm for a configuration")
    modbus_farm.add_arguments(sm)
    sm.set_defaults(func=_sim, sim_run=modbus_farm.run_cli)
    sq = ssub.add_parser("mqtt", help="an MQTT sensor fleet for a configuration")
    mqtt_fleet.add_arguments(sq)
    sq.set_defaults(func=_sim, sim_run=mqtt_fleet.run_cli)


def _bench_arguments(b: argparse.ArgumentParser) -> None:
    from gateway.root.bench import alarms as bench_alarms
    from gateway.root.bench import faults as bench_faults
    from gateway.root.bench import ingest as bench_ingest
    from gateway.root.bench import modbus as bench_modbus
    from gateway.root.bench import soak as bench_soak
    from gateway.root.bench import store as bench_store

    bsub = b.add_subparsers(dest="bench", required=True)
    bi = bsub.add_parser("ingest", help="MQTT telemetry through a real broker into the gateway")
    bench_ingest.add_ingest_arguments(bi)
    bi.set_defaults(func=_bench, bench_run=bench_ingest.run_ingest)
    bs = bsub.add_parser("store", help="SQLite and InfluxDB through the outbox, next to their raw ceilings")
    bench_store.add_arguments(bs)
    bs.set_defaults(func=_bench, bench_run=bench_store.run)
    bm = bsub.add_parser("modbus", help="the Modbus collector polling a simulated device farm")
    bench_modbus.add_modbus_arguments(bm)
    bm.set_defaults(func=_bench, bench_run=bench_modbus.run_modbus)
    ba = bsub.add_parser("alarms", help="alarm events through the gateway to a live subscriber; statistics queries")
    bench_alarms.add_arguments(ba)
    ba.set_defaults(func=_bench, bench_run=bench_alarms.run)
    bf = bsub.add_parser("faults", help="the Modbus collector against each way a field device misbehaves")
    bench_faults.add_arguments(bf)
    bf.set_defaults(func=_bench, bench_run=bench_faults.run)
    bk = bsub.add_parser("soak", help="gridgate run against gridgate sim modbus for minutes; samples per minute")
    bench_soak.add_arguments(bk)
    bk.set_defaults(func=_bench, bench_run=bench_soak.run)


HTTP_CLIENT_LOGGERS = ("httpx", "httpcore", "influxdb_client", "urllib3")


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command_of(argv)).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # HTTP clients log every request at INFO (httpx's "HTTP Request: POST ..."): a benchmark or a
    # soak would print thousands of lines; with -v they are back.
    for name in HTTP_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if args.verbose else logging.WARNING)
    # pymodbus logs every failed connect and exception response; the collector logs state changes.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader went away (`gridgate check -c big.toml | head`): stop quietly, as other
        # command-line tools do, and keep Python from complaining again when it flushes stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
