"""Rasa custom actions for Benti, Cention, Imbee and Loop.

Start the action server with `python -m rasa_sdk --actions actions` (or `rasa run actions`).
Importing this package reads and checks the configuration first, so a server with missing
or invalid settings stops at once with a message naming every variable to fix.
"""

from actions.runtime import startup

startup()
