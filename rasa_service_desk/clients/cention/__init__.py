"""Cention Contact Center: library answers, errands, and the agent-answer callback.

Kept free of imports on purpose: the callback connector imports parts of this package inside
Rasa Open Source (pydantic 1.10, no pydantic-settings), the action server other parts.
"""
