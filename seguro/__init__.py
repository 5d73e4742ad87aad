"""Seguro: a replicated, fenced event log for Urbit ships."""

__version__ = "0.1.0"
