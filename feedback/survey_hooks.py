"""Where surveys listen to the rest of the platform (wired in ``apps.ready``)."""

from __future__ import annotations


def register() -> None:
    """Add the survey hooks to the other apps' hook lists (idempotent)."""
