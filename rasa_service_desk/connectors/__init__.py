"""Rasa channel connectors (InputChannel subclasses), loaded from `credentials.yml`.

They run inside Rasa Open Source 3.6 (pydantic 1.10, sanic 21.12), so they import only what
that environment provides plus the project's pydantic-1/2-compatible client code.
"""
