"""`python -m rasa_service_desk`: helpers for bot designers and operators.

    python -m rasa_service_desk add benti [--bot PATH] [--overwrite]

copies the domain and data files of one integration (and the shared ones) into a bot, moving
a `rasa init` bot's `domain.yml` into a `domain/` folder first, and prints what is left to
do by hand (the import line, the action endpoint, and for Cention the callback channel).

    python -m rasa_service_desk outbox list|retry|drop ...

shows and handles the submissions waiting for a vendor (`rasa_service_desk.outbox.cli`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rasa_service_desk.bundles import INTEGRATIONS, copy_bundle, move_domain_into_folder

NEXT_STEPS = """
Next:
  1. In your bot's actions package (actions/__init__.py or actions/actions.py), add:
         from rasa_service_desk.actions import {name}  # noqa: F401
  2. In endpoints.yml, point action_endpoint at the action server:
         action_endpoint:
           url: "http://localhost:5055/webhook"
  3. Train and validate with the domain folder:
         rasa data validate --domain domain && rasa train --domain domain
"""
OUTBOX_STEP = """  {step}. Start Rasa with its HTTP API (rasa run --enable-api) and set
     OUTBOX_RASA_URL for the action server (default http://localhost:5005;
     OUTBOX_RASA_TOKEN if Rasa has --auth-token): submissions saved during a vendor
     outage are announced through it.
"""
CENTION_STEP = """  4. For agents' answers, add the callback channel to credentials.yml:
         rasa_service_desk.connectors.cention.CentionInput:
           api_secret: ${{CENTION_CALLBACK_SECRET}}
     A REST front end only hears the bot in reply to its own messages, so the answer is
     held for the customer's next message: replace `rest:` in credentials.yml with
         rasa_service_desk.connectors.rest.RestInput:
     (same URL and messages) to show it then; other channels: docs/cention-connector.md
     in the project's repository.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rasa_service_desk")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="copy one integration's domain and data files")
    add.add_argument("integration", choices=INTEGRATIONS)
    add.add_argument("--bot", type=Path, default=Path("."), help="the bot's folder (default .)")
    add.add_argument("--overwrite", action="store_true",
                     help="replace files that exist and differ")
    outbox = commands.add_parser("outbox", help="the submissions waiting for a vendor")
    actions = outbox.add_subparsers(dest="outbox_command", required=True)
    listing = actions.add_parser("list", help="waiting, given-up and unannounced submissions")
    listing.add_argument("--json", action="store_true", help="one JSON list")
    again = actions.add_parser("retry", help="send one (or all) again at the next pass")
    which = again.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", help="the id `outbox list` shows (a unique prefix)")
    which.add_argument("--all", action="store_true", help="every waiting or given-up one")
    forget = actions.add_parser("drop", help="forget one for good (the customer is not told)")
    forget.add_argument("id", help="the id `outbox list` shows (a unique prefix)")
    args = parser.parse_args(argv)
    if args.command == "outbox":
        return outbox_command(args)
    if not args.bot.is_dir():
        print(f"error: {args.bot} is not a folder: pass --bot the bot's folder (where "
              "config.yml and domain.yml are)", file=sys.stderr)
        return 1

    moved = move_domain_into_folder(args.bot)
    if moved is not None:
        print(f"moved domain.yml to {moved}")
    try:
        written = copy_bundle(args.integration, args.bot, overwrite=args.overwrite)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    print(NEXT_STEPS.format(name=args.integration), end="")
    if args.integration == "cention":
        print(CENTION_STEP.format(), end="")
    if args.integration in ("benti", "cention", "loop"):
        print(OUTBOX_STEP.format(step=5 if args.integration == "cention" else 4), end="")
    return 0


def outbox_command(args: argparse.Namespace) -> int:
    """`outbox list|retry|drop` against the store `STATE_URL` names."""
    import asyncio

    from rasa_service_desk.clients.errors import ConfigurationError
    from rasa_service_desk.outbox import cli
    from rasa_service_desk.outbox.settings import OutboxSettings
    from rasa_service_desk.state import load_store

    try:
        store = load_store()
        settings = OutboxSettings.load()
    except ConfigurationError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2

    async def run() -> str:
        try:
            if args.outbox_command == "list":
                return await cli.list_entries(store, args.json)
            if args.outbox_command == "retry":
                return await cli.retry(store, settings, None if args.all else args.id)
            return await cli.drop(store, args.id)
        finally:
            await store.close()

    try:
        print(asyncio.run(run()))
    except LookupError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
