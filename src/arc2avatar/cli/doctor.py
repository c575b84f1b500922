"""`arc2avatar doctor` (not yet implemented)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Placeholder: the command is added by its implementing module."""
