#!/usr/bin/env python3
"""Write Mosquitto's password file for every controller of the city and every gateway replica.

Users: one per intersection of the registry (username = intersection id, e.g. ``YT001``; the
ACL lets it publish only under ``signals/YT001/``) and ``gateway-1`` .. ``gateway-N`` (read
only). Two files:

* ``--passwd``: what Mosquitto reads (``password_file``): ``user:$7$...`` PBKDF2-SHA512 hashes
  in the format of ``mosquitto_passwd`` (Mosquitto 2.0), mode 0640, group ``--group`` (Mosquitto
  started as root reads it after dropping to the ``mosquitto`` user: ``--group mosquitto``);
* ``--secrets``: the plaintext ``user:password`` lines for provisioning the controllers and the
  gateways' ``SIGNAL_GATEWAY_BROKER``, mode 0600. Keep it off the broker machine.

Running it again keeps every existing password (read back from ``--secrets``): adding an
intersection to ``intersections.yaml`` provisions one new controller and disturbs none.
``--rotate USER`` (repeatable) or ``--rotate-all`` issues new passwords; users no longer in the
registry are dropped. Needs the project installed (it validates the registry with the
gateway's own loader)::

    python deploy/mosquitto/gen_passwords.py --registry intersections.yaml --gateways 2 \\
        --passwd /etc/mosquitto/signal_gateway/passwd --group mosquitto \\
        --secrets /root/signal-gateway.secrets
"""

from __future__ import annotations

import argparse
import base64
import grp
import hashlib
import os
import re
import secrets
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_ACL = HERE / "acl"
ITERATIONS = 101
"""mosquitto_passwd's default. The passwords are 192 random bits, not words a person chose:
stretching adds nothing against guessing and would cost CPU on every controller's CONNECT."""
SALT_BYTES = 12
HASH_BYTES = 64


def mosquitto_hash(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """``$7$<iterations>$<salt b64>$<hash b64>``: Mosquitto 2.0's sha512-pbkdf2 entry."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def new_password() -> str:
    """A random password safe inside a URL's user info (letters, digits, ``-`` and ``_``)."""
    return secrets.token_urlsafe(24)


def read_secrets(path: Path) -> dict[str, str]:
    """``user:password`` lines of an earlier run (comments and blanks ignored)."""
    found: dict[str, str] = {}
    if not path.exists():
        return found
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            raise SystemExit(f"{path}:{number}: not a user:password line")
        found[user] = password
    return found


def acl_users(path: Path) -> set[str]:
    """The users that have a ``user NAME`` block in a Mosquitto ACL file."""
    text = path.read_text(encoding="utf-8")
    return set(re.findall(r"^\s*user\s+(\S+)\s*$", text, flags=re.MULTILINE))


def plan_users(
    controllers: Sequence[str],
    gateways: int,
    existing: Mapping[str, str],
    rotate: Iterable[str],
    rotate_all: bool,
) -> dict[str, str]:
    """Every user with its password: kept from ``existing`` unless rotated, else new."""
    rotate = set(rotate)
    users = [*controllers, *(f"gateway-{i}" for i in range(1, gateways + 1))]
    unknown = rotate - set(users)
    if unknown:
        raise SystemExit(f"--rotate: no such user {', '.join(sorted(unknown))}")
    plan: dict[str, str] = {}
    for user in users:
        keep = user in existing and not rotate_all and user not in rotate
        plan[user] = existing[user] if keep else new_password()
    return plan


def write_private(path: Path, text: str, mode: int, group: str | None = None) -> None:
    """Write ``text`` atomically to ``path`` with ``mode``; never readable by others meanwhile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        if group is not None:
            os.fchown(fd, -1, grp.getgrnam(group).gr_gid)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def controller_ids(registry_path: Path) -> list[str]:
    """The intersection ids of the validated registry."""
    from signal_gateway.core.registry import ConfigError, load_registry

    try:
        return list(load_registry(registry_path).ids)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{registry_path}: {problem}", file=sys.stderr)
        raise SystemExit(f"{registry_path}: invalid registry, no password file written") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", type=Path, default=Path("intersections.yaml"))
    parser.add_argument("--gateways", type=int, default=2, help="gateway replicas (default 2)")
    parser.add_argument("--passwd", type=Path, required=True, help="Mosquitto password_file")
    parser.add_argument("--secrets", type=Path, required=True, help="plaintext user:password")
    parser.add_argument("--group", help="group of --passwd, e.g. mosquitto (default: yours)")
    parser.add_argument("--acl", type=Path, default=DEFAULT_ACL, help="ACL to check gateways in")
    parser.add_argument("--rotate", action="append", default=[], metavar="USER")
    parser.add_argument("--rotate-all", action="store_true")
    args = parser.parse_args(argv)

    if args.gateways < 1:
        parser.error("--gateways must be at least 1")
    if args.group is not None:
        try:
            grp.getgrnam(args.group)
        except KeyError:
            parser.error(f"--group: no group {args.group!r} on this machine")
    in_acl = acl_users(args.acl)
    missing = [f"gateway-{i}" for i in range(1, args.gateways + 1) if f"gateway-{i}" not in in_acl]
    if missing:
        parser.error(f"{args.acl} has no 'user' block for {', '.join(missing)}: add them first")
    controllers = controller_ids(args.registry)
    existing = read_secrets(args.secrets)
    plan = plan_users(controllers, args.gateways, existing, args.rotate, args.rotate_all)

    header = "# signal_gateway broker users, written by deploy/mosquitto/gen_passwords.py\n"
    write_private(
        args.secrets,
        header
        + "# PLAINTEXT: provision controllers and gateways from it, then keep it safe\n"
        + "".join(f"{user}:{password}\n" for user, password in plan.items()),
        0o600,
    )
    write_private(
        args.passwd,
        header + "".join(f"{user}:{mosquitto_hash(pw)}\n" for user, pw in plan.items()),
        0o640,
        args.group,
    )
    kept = sum(1 for user, pw in plan.items() if existing.get(user) == pw)
    dropped = sorted(set(existing) - set(plan))
    print(
        f"{args.passwd}: {len(controllers)} controllers + {args.gateways} gateways "
        f"({len(plan) - kept} new passwords, {kept} kept"
        + (f", dropped {', '.join(dropped)}" if dropped else "")
        + f"); plaintext in {args.secrets} (0600)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
