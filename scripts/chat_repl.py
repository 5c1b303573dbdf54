"""A chat prompt for `make chat`: talks to the running bot through Rasa's REST channel.

Type a message and see the bot's replies; type the number of a button to press it.
`!agent <text>` plays the support agent: it answers this conversation's latest Cention
errand in the simulator, which fires the callback at Rasa, and the answer is shown as it
lands in the conversation. `!quit` (or Ctrl-D) leaves.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
import uuid
from typing import Any

TIMEOUT = 60


def call(url: str, body: Any = None) -> Any:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url}")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=TIMEOUT) as reply:  # noqa: S310
        return json.loads(reply.read() or b"null")


class Chat:
    def __init__(self, rasa: str, sandbox: str) -> None:
        self.rasa = rasa
        self.sandbox = sandbox
        self.sender = f"chat-{uuid.uuid4().hex[:8]}"
        self.buttons: list[dict[str, str]] = []
        self.seen = 0  # bot events of the tracker already shown

    def show(self, messages: list[dict[str, Any]]) -> None:
        self.buttons = []
        for message in messages:
            if message.get("text"):
                print(f"bot> {message['text']}")
            for button in message.get("buttons") or []:
                self.buttons.append(button)
                print(f"     [{len(self.buttons)}] {button.get('title')}")
        self.seen = len(self.bot_events())

    def bot_events(self) -> list[dict[str, Any]]:
        tracker = call(f"{self.rasa}/conversations/{self.sender}/tracker")
        return [e for e in tracker.get("events", []) if e.get("event") == "bot"]

    def say(self, text: str) -> None:
        if text.isdigit() and 0 < int(text) <= len(self.buttons):
            text = self.buttons[int(text) - 1]["payload"]
        self.show(call(f"{self.rasa}/webhooks/rest/webhook",
                       {"sender": self.sender, "message": text}))

    def agent(self, answer: str) -> None:
        tracker = call(f"{self.rasa}/conversations/{self.sender}/tracker")
        errand = (tracker.get("slots") or {}).get("cention_errand_id")
        if not errand:
            print("(no errand in this conversation yet: ask to talk to support first)")
            return
        result = call(f"{self.sandbox}/cention/_sandbox/answer",
                      {"errand_id": errand, "body": answer})
        if result.get("status") != 200:
            print(f"(the callback failed: {result.get('status') or result.get('error')})")
        new = self.bot_events()[self.seen:]
        self.show([{"text": e.get("text"), **(e.get("data") or {})} for e in new])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rasa", default="http://127.0.0.1:5005")
    parser.add_argument("--sandbox", default="http://127.0.0.1:8765")
    args = parser.parse_args()
    chat = Chat(args.rasa, args.sandbox)
    print("Chat with the reference bot. Try: hi / how do I reset my password / open a ticket /"
          "\n  I want to talk to support / live chat / take the survey / I want to make a "
          "complaint.\n  Numbers press buttons; `!agent <text>` answers your errand as the "
          "agent; `!quit` leaves.")
    while True:
        try:
            text = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return
        if text == "!quit":
            return
        if text.startswith("!agent "):
            chat.agent(text.removeprefix("!agent ").strip())
        elif text:
            chat.say(text)


if __name__ == "__main__":
    main()
