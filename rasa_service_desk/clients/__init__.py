"""Async clients for the vendor APIs, the HTTP layer they share, and their errors.

Nothing in this package knows about Rasa: actions and connectors call it, never the reverse.
"""
