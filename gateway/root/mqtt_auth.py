"""``gridgate mqtt-auth``: the broker's logins and what each may do, as Mosquitto's password and ACL files.

One login per enterprise (its devices publish under ``{prefix}/{enterprise}/`` only and read only
their own ``errors``), per officer (their own alarm topic and their grids'), per department (its own
alarm topic), and the gateway's (``[mqtt] username``, default ``gateway``: reads every telemetry
and status topic, writes the answers and the alarm topics). Nothing else is allowed: Mosquitto's
``acl_file`` denies whatever no line grants, ``$SYS`` included.

Passwords are random, hashed in Mosquitto 2.x's own format (``$7$``: PBKDF2-HMAC-SHA512, what
``mosquitto_passwd`` writes) and shown once, in ``credentials`` (mode 0600) beside the files. A new
run keeps every existing login's hash (and its line in ``credentials``), so adding an enterprise
locks nobody out; ``--rotate`` renews all passwords, or only the logins it names. The gateway's
password is ``[mqtt] password`` when the configuration has one.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from gateway.config import Config
from gateway.registry import Registry

# Mosquitto's own default (mosquitto_passwd). The passwords made here are 144 random bits, which no
# iteration count protects further, and every device's (re)connection costs the broker this work.
ITERATIONS = 101
SALT_BYTES = 12
READ, WRITE = "read", "write"


@dataclass(frozen=True)
class Login:
    """A broker login and the topics it may use: ``(access, topic filter)`` pairs."""

    username: str
    rules: tuple[tuple[str, str], ...]


def hash_password(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """``password`` in Mosquitto's ``$7$<iterations>$<base64 salt>$<base64 PBKDF2-SHA512>`` form."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``hashed`` (a ``$7$`` hash) is ``password``'s; any other form is not."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt, want = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]), len(want))
    return hmac.compare_digest(got, want)


def gateway_username(cfg: Config) -> str:
    return cfg.mqtt.username or "gateway"


def logins(cfg: Config) -> list[Login]:
    """Every login the broker needs for ``cfg``, the gateway's first."""
    p = cfg.mqtt.prefix.rstrip("/")
    if not p or any(c in "+#" or c.isspace() for c in p):
        raise ValueError(f"[mqtt] prefix {cfg.mqtt.prefix!r} cannot be written in an ACL: no wildcards or spaces")
    registry = Registry(cfg)
    out = [Login(gateway_username(cfg), (
        (READ, f"{p}/+/+/telemetry"), (READ, f"{p}/+/+/status"), (WRITE, f"{p}/+/+/errors"),
        (WRITE, f"{p}/alarms/+"), (WRITE, f"{p}/officers/+/alarms"), (WRITE, f"{p}/departments/+/alarms")))]
    out += [Login(f"ent.{e.id}", ((WRITE, f"{p}/{e.id}/+/telemetry"), (WRITE, f"{p}/{e.id}/+/status"),
                                  (READ, f"{p}/{e.id}/+/errors")))
            for e in cfg.enterprises]
    out += [Login(f"officer.{o.id}", ((READ, f"{p}/officers/{o.id}/alarms"),
                                      *((READ, f"{p}/alarms/{g}") for g in sorted(registry.grids_of_officer(o.id)))))
            for o in cfg.officers]
    out += [Login(f"department.{d.id}", ((READ, f"{p}/departments/{d.id}/alarms"),)) for d in cfg.departments]
    names = [login.username for login in out]
    if len(set(names)) != len(names) or any(":" in n or n != n.strip() or not n for n in names):
        raise ValueError(f"the gateway's [mqtt] username {names[0]!r} is taken or cannot be a Mosquitto login")
    return out


def acl_text(cfg: Config, all_logins: list[Login]) -> str:
    lines = [f"# Mosquitto acl_file written by gridgate mqtt-auth for gateway {cfg.gateway.id!r}; "
             "whatever no line grants is denied."]
    for login in all_logins:
        lines += ["", f"user {login.username}", *(f"topic {access} {topic}" for access, topic in login.rules)]
    return "\n".join(lines) + "\n"


def _read_pairs(path: Path, sep: str) -> dict[str, str]:
    """``name<sep>value`` lines of ``path`` (missing: none), comments and blank lines skipped."""
    if not path.exists():
        return {}
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, found, value = line.partition(sep)
        if found and not line.startswith("#"):
            pairs[name] = value
    return pairs


def _write(path: Path, text: str, mode: int) -> None:
    """Replace ``path`` at once with ``text``, never readable beyond ``mode`` even while written."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Written:
    """What a run wrote: the files, and which logins got a new password."""

    passwd: Path
    acl: Path
    credentials: Path
    new: tuple[str, ...]
    kept: tuple[str, ...]


def write_files(cfg: Config, out: Path, rotate: list[str] | None = None) -> Written:
    """Write ``passwd``, ``acl`` and ``credentials`` into ``out``; ``rotate``: None keeps every existing
    password, an empty list renews all, names renew those logins."""
    all_logins = logins(cfg)
    names = {login.username for login in all_logins}
    unknown = sorted(set(rotate or ()) - names)
    if unknown:
        raise ValueError(f"--rotate names no such login: {', '.join(unknown)}")
    renew = names if rotate == [] else set(rotate or ())
    out.mkdir(parents=True, exist_ok=True)
    passwd, acl, credentials = out / "passwd", out / "acl", out / "credentials"
    old_hashes, old_plain = _read_pairs(passwd, ":"), _read_pairs(credentials, " ")
    gateway, gateway_pw = gateway_username(cfg), cfg.mqtt.password
    hashes: dict[str, str] = {}
    shown: dict[str, str] = {}
    new: list[str] = []
    for name in (login.username for login in all_logins):
        old = old_hashes.get(name)
        if name == gateway and gateway_pw is not None:  # the configuration's password, never shown
            hashes[name] = old if old and verify_password(gateway_pw, old) else hash_password(gateway_pw)
        elif old and name not in renew:
            hashes[name] = old
            if name in old_plain:
                shown[name] = old_plain[name]
        else:
            shown[name] = secrets.token_urlsafe(18)
            hashes[name] = hash_password(shown[name])
            new.append(name)
    _write(passwd, "".join(f"{n}:{h}\n" for n, h in hashes.items()), 0o640)
    _write(acl, acl_text(cfg, all_logins), 0o644)
    header = ("# MQTT logins made by gridgate mqtt-auth: hand each its own, then keep this file private.\n"
              + (f"# {gateway}: the [mqtt] password of the configuration\n" if gateway_pw is not None else ""))
    _write(credentials, header + "".join(f"{n} {pw}\n" for n, pw in shown.items()), 0o600)
    kept = tuple(n for n in hashes if n not in new)
    return Written(passwd, acl, credentials, tuple(new), kept)


def mosquitto_snippet(written: Written) -> str:
    return (f"allow_anonymous false\npassword_file {written.passwd.resolve()}\n"
            f"acl_file {written.acl.resolve()}\n")


def run(args: argparse.Namespace, cfg: Config) -> int:
    from gateway.register.service import registry_in_service

    # the registry in service: enterprises added through the API or an import need their logins too
    cfg = registry_in_service(cfg, getattr(args, "data_dir", None)).config
    try:
        written = write_files(cfg, Path(args.out), args.rotate)
    except ValueError as exc:
        print(f"gridgate mqtt-auth: {exc}", file=sys.stderr)
        return 2
    print(f"{len(written.new) + len(written.kept)} logins: {len(written.new)} new passwords, "
          f"{len(written.kept)} kept")
    print(f"passwords (shown once, mode 0600): {written.credentials}")
    print("include in mosquitto.conf (the files must be readable by the broker's user):\n")
    print(mosquitto_snippet(written))
    if cfg.mqtt.username is None or cfg.mqtt.password is None:
        print(f'the gateway logs in as {gateway_username(cfg)!r}: set [mqtt] username and password '
              f"(from {written.credentials}) in {args.config}")
    return 0
