"""Placeholder: filled in by the serving work (issue 14)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
