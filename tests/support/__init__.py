"""Helpers shared by the test packages: real servers on loopback and Rasa-shaped payloads."""
