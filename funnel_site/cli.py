"""What every management command of the public contract shares: --workspace, --json, durations,
and errors as one sentence on stderr with a non-zero exit (Django's CommandError)."""

from __future__ import annotations

import re
import sys
from typing import Any

import orjson
from django.core.management.base import BaseCommand, CommandError

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, *, field: str, allow_zero: bool = False) -> int:
    """'90s', '30m', '1h', '14d', '2w' -> seconds; CommandError naming the field otherwise."""
    match = _DURATION.match(str(text))
    if not match:
        raise CommandError(f"--{field} {text!r} is not a duration: write it like 90s, 30m, 1h, 14d or 2w")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0 and not allow_zero:
        raise CommandError(f"--{field} must be longer than zero, got {text!r}")
    return seconds


class ContractCommand(BaseCommand):
    """A command of the public contract: takes --workspace and --json, prints JSON when asked."""

    workspace_required = True

    def add_arguments(self, parser) -> None:
        parser.add_argument("--workspace", required=self.workspace_required, help="workspace slug")
        parser.add_argument("--json", action="store_true", help="print machine-readable JSON")

    def get_workspace(self, slug: str):
        """The workspace, or a CommandError naming the slug."""
        from funnel_site.events.services import WorkspaceError, workspace_get

        try:
            return workspace_get(slug=slug)
        except WorkspaceError as exc:
            raise CommandError(str(exc)) from None

    def emit(self, options: dict, payload: dict[str, Any], human: str) -> None:
        """Print JSON (one line) with --json, else the human summary."""
        if options.get("json"):
            self.stdout.write(orjson.dumps(payload, default=str).decode())
        else:
            self.stdout.write(human)

    def progress(self, *, total: int | None, unit: str, desc: str):
        """A progress bar on a terminal (stderr), nothing when piped."""
        from tqdm import tqdm

        return tqdm(total=total, unit=unit, desc=desc, disable=not sys.stderr.isatty(), file=sys.stderr,
                    unit_scale=True, mininterval=0.5)
