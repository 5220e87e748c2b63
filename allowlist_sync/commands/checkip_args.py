"""The `check-ip` subcommand's arguments; light on purpose (the CLI builds it for `--help`)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add `check-ip ADDR [ADDR ...]` to the CLI's subparsers; returns it (the CLI adds
    `--config` and `--target`)."""
    command: argparse.ArgumentParser = commands.add_parser(
        "check-ip",
        help="is this address let in? which sources publish it, which rules hold it; GETs only",
        description="For each address (one host, IPv4 or IPv6, such as one copied from Entra's "
        "or Okta's provisioning log): which sources publish it (source, Azure tag or Okta cell, "
        "containing prefix), and for each target whether its owned rule covers it, whether the "
        "account's active rules let it in (an active allow rule holds it and no active deny rule "
        "does) and whether enforcement is on. Writes nothing. Exit 0 when every address is let "
        "in by every target, 1 otherwise; 64 bad address, 77 token refused, 78 bad configuration.",
    )
    command.add_argument(
        "addresses", metavar="ADDR", nargs="+", help="an IP address (not a network)"
    )
    command.add_argument(
        "--output", choices=("text", "json"), default="text", help="text (default) or JSON"
    )
    source = command.add_mutually_exclusive_group()
    source.add_argument(
        "--source-file",
        metavar="PATH",
        help="without a config file: read the service-tags JSON from PATH ('-' for stdin)",
    )
    source.add_argument(
        "--source-url", metavar="URL", help="without a config file: download the service-tags JSON"
    )
    return command


def run(args: argparse.Namespace) -> int:
    """Run `check-ip` (its modules are imported only now); returns the exit code."""
    from allowlist_sync.commands.checkip import run_check_ip

    return run_check_ip(args)
