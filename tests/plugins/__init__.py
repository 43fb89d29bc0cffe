"""Plug-ins the tests register, to prove a new trigger type needs no edit elsewhere."""
