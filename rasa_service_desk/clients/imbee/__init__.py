"""Imbee: open a chat between a customer and an agent, reached through a web access link.

`client.ImbeeClient` registers the customer as an external user (under an id derived from
the conversation), creates the chat with the configured agent and generates the access token.
Submodules are imported explicitly, so `models` stays usable where pydantic-settings is absent.
"""
