"""The domain and training-data files each integration needs in a bot, shipped with the
package so that a bot built from `pip install` alone can copy them.

In the repository these are links to the reference bot's own `domain/` and `data/` files,
so the bot that the tests train and the files a designer copies are the same files.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

INTEGRATIONS = ("benti", "cention", "imbee", "loop")
#: Every integration needs these too: "try again", the contact slots, the error responses.
SHARED = "shared"


def bundle_files(integration: str) -> list[tuple[str, str]]:
    """(folder, file name) of every file a bot needs for `integration`."""
    if integration not in INTEGRATIONS:
        raise ValueError(f"unknown integration {integration!r}; "
                         f"choose from {', '.join(INTEGRATIONS)}")
    return [(folder, f"{name}.yml") for folder in ("domain", "data")
            for name in (SHARED, integration)]


def read_bundle_file(folder: str, name: str) -> str:
    """The text of one shipped file, e.g. `read_bundle_file("domain", "benti.yml")`."""
    return (resources.files(__name__) / folder / name).read_text(encoding="utf-8")


def copy_bundle(integration: str, bot_dir: Path, overwrite: bool = False) -> list[Path]:
    """Copy the files of `integration` into `bot_dir/domain` and `bot_dir/data`.

    The shared files are the same for every integration, so an existing identical copy is
    fine; any other existing file is left alone unless `overwrite` (a designer may have
    reworded its responses).
    """
    written: list[Path] = []
    for folder, name in bundle_files(integration):
        target = bot_dir / folder / name
        text = read_bundle_file(folder, name)
        if target.exists() and not overwrite:
            if target.read_text(encoding="utf-8") == text:
                continue
            raise FileExistsError(f"{target} exists and differs; pass --overwrite to replace it")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def move_domain_into_folder(bot_dir: Path) -> Path | None:
    """`rasa init` makes one `domain.yml`; the bundles need a `domain/` folder. Moves the
    file into the folder (as `domain/bot.yml`) and returns its new path, or None."""
    single = bot_dir / "domain.yml"
    if not single.is_file():
        return None
    target = bot_dir / "domain" / "bot.yml"
    target.parent.mkdir(exist_ok=True)
    shutil.move(str(single), str(target))
    return target
