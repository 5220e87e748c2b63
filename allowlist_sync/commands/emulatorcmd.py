"""The `emulator` command's arguments and start-up (the emulator itself is `emulator/`).

Kept out of cli.py, which only wires commands: the emulator's many seeding flags are its own.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from allowlist_sync.errors import ExitCode


def _port(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0-65535; 0: any free port)")
    return port


def _positive_int(text: str) -> int:
    """An argparse type: a whole number from 1."""
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1")
    return int(text)


def add_emulator_parser(commands: Any) -> None:
    """Add `allowlist-sync emulator` and its flags to the CLI's subcommands."""
    emulator = commands.add_parser(
        "emulator",
        help="run a local emulator of the dbt IP-restriction API",
        description="Serve a local stand-in for the dbt IP-restriction endpoints until Ctrl-C. "
        "It prints the exports to paste into another terminal, the bundled service-tags "
        "snapshot's path and a dry run reading it. Seed it with the flags below (repeatable "
        "where said); POST /_emulator/reset returns to that start-up state. See docs/emulator.md.",
    )
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument(
        "--port",
        type=_port,
        default=None,
        help="0: any free port (default: ALLOWLIST_SYNC_EMULATOR_PORT, else 8000)",
    )
    emulator.add_argument(
        "--account-id",
        metavar="ID[:TOKEN]",
        action="append",
        default=[],
        help="serve this account (repeatable; default 1); the first is the one exported and "
        "the control API's default; ':TOKEN' gives it its own token",
    )
    emulator.add_argument(
        "--page-size",
        type=_positive_int,
        default=100,
        help="largest page the list endpoint returns",
    )
    emulator.add_argument(
        "--preset",
        metavar="NAME",
        help="start from a prepared account: just-enabled (IP restrictions just turned on: "
        "enforcement on, an allow rule 'Office' holding the caller, 198.51.100.7 unless "
        "--caller-ip is given)",
    )
    emulator.add_argument(
        "--rule",
        metavar="[ID:]NAME=CIDR[,CIDR...]",
        action="append",
        default=[],
        help="an allow rule somebody else keeps, in every account or in account ID (repeatable)",
    )
    emulator.add_argument(
        "--deny-rule",
        metavar="[ID:]NAME=CIDR[,CIDR...]",
        action="append",
        default=[],
        help="a deny rule (repeatable)",
    )
    emulator.add_argument(
        "--enforce", action="store_true", help="start with IP restrictions enforced everywhere"
    )
    emulator.add_argument(
        "--enforce-account",
        metavar="ID",
        action="append",
        default=[],
        help="start with IP restrictions enforced in account ID only (repeatable)",
    )
    emulator.add_argument(
        "--delay",
        metavar="SECONDS",
        default=None,
        help="answer every /api/ request after SECONDS, like a WAN round trip (default 0)",
    )
    emulator.add_argument(
        "--caller-ip",
        metavar="IP",
        default=None,
        help="treat every caller as this address (to try the lock-out guard)",
    )
    emulator.add_argument(
        "--fault",
        metavar="SPEC",
        action="append",
        default=[],
        help="inject a fault (repeatable), e.g. status=429,method=PUT,times=2; keys: account, "
        "action, status, method, path, times, retry_after, seconds",
    )
    emulator.add_argument(
        "--strict",
        action="store_true",
        help="answer writes the stricter way where the API spec is silent",
    )


def run_emulator(args: argparse.Namespace) -> int:
    """Start the emulator as the flags say; 64 with one line for a bad flag."""
    from allowlist_sync.emulator import DEFAULT_TOKEN, SeedError, build_seed, serve_forever

    try:
        seed = build_seed(
            rules=args.rule,
            deny_rules=args.deny_rule,
            faults=args.fault,
            enforce=args.enforce,
            caller_ip=args.caller_ip,
            strict=args.strict,
            preset=args.preset,
            accounts=args.account_id,
            enforce_accounts=args.enforce_account,
            delay=args.delay,
        )
        port = args.port if args.port is not None else _emulator_port()
        token = _emulator_token() or DEFAULT_TOKEN
    except (SeedError, argparse.ArgumentTypeError) as exc:
        # One line, like argparse's own error but without the long usage text.
        print(f"allowlist-sync emulator: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    return serve_forever(
        host=args.host, port=port, token=token, max_page_size=args.page_size, seed=seed
    )


def _emulator_port() -> int:
    """`ALLOWLIST_SYNC_EMULATOR_PORT` (0: any free port, for runs side by side), else 8000."""
    raw = os.environ.get("ALLOWLIST_SYNC_EMULATOR_PORT", "").strip()
    if not raw:
        return 8000
    try:
        return _port(raw)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"ALLOWLIST_SYNC_EMULATOR_PORT: {exc}") from None


def _emulator_token() -> str:
    """`ALLOWLIST_SYNC_EMULATOR_TOKEN`, if set: printable, no spaces (it travels in a header)."""
    token = os.environ.get("ALLOWLIST_SYNC_EMULATOR_TOKEN", "")
    if token and not all("!" <= ch <= "~" for ch in token):
        raise argparse.ArgumentTypeError(
            "ALLOWLIST_SYNC_EMULATOR_TOKEN must be printable ASCII without spaces"
        )
    return token
