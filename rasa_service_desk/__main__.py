"""`python -m rasa_service_desk`: helpers for bot designers.

    python -m rasa_service_desk add benti [--bot PATH] [--overwrite]

copies the domain and data files of one integration (and the shared ones) into a bot, moving
a `rasa init` bot's `domain.yml` into a `domain/` folder first, and prints what is left to
do by hand (the import line, the action endpoint, and for Cention the callback channel).
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
    args = parser.parse_args(argv)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
