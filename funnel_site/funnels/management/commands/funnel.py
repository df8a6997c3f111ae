"""python manage.py funnel --workspace SLUG --steps A,B,C [--window 14d] [--order sequential|strict|any]
[--since ISO] [--until ISO] [--exclude EVENT:a-b ...] [--breakdown FIELD] [--count unique|totals]
[--optional N,...] [--where STEP:KEY=VALUE ...] [--json]"""

from __future__ import annotations

import re
from typing import Any

import orjson
from django.core.management.base import CommandError

from funnel_site.cli import ContractCommand
from funnel_site.events.columns import ReadModelUnavailable
from funnel_site.funnels.engine import FunnelDefinitionError, FunnelTimeoutError
from funnel_site.funnels.selectors import funnel_query
from funnel_site.funnels.spec import funnel_spec_parse

# the spec's field names spelled as the command's flags, for error messages
_FLAGS = {"steps": "--steps", "window": "--window", "order": "--order", "count": "--count", "since": "--since",
          "until": "--until", "exclude": "--exclude", "breakdown": "--breakdown", "hold_constant": "--hold-constant",
          "attribution": "--attribution", "histogram_bins": "--bins", "trend_interval": "--trend"}


def flag_of(field: str) -> str:
    """`steps[2]` -> `--steps (step 3)`, `steps[2].properties[0]` -> `--where (step 3)`."""
    base = field.split("[", 1)[0].split(".", 1)[0]
    flag = _FLAGS.get(base, base)
    if base in ("steps", "exclude", "exclusions") and "[" in field:
        index = int(field.split("[", 1)[1].split("]", 1)[0])
        noun = "step" if base == "steps" else "exclusion"
        if base == "steps" and ".properties" in field:
            flag = "--where"
        elif base == "steps" and field.endswith(".optional"):
            flag = "--optional"
        else:
            flag = _FLAGS.get(base, "--exclude")
        flag = f"{flag} ({noun} {index + 1})"
    return flag


_WHERE = re.compile(r"^\s*(\d+)\s*:\s*([^=~<>]+?)\s*([=~<>])\s*(.*?)\s*$")
_OPERATORS = {"=": "eq", "~": "contains", ">": "gt", "<": "lt"}


def _value(text: str) -> Any:
    """A number, true/false/null or a JSON string as such; anything else as the text itself."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def steps_with_options(steps: list[str], optional: str | None, where: list[str]) -> list[Any]:
    """The `--steps` list with `--optional` and `--where` folded in (a step becomes an object when it
    has either), in the funnel spec's shape; CommandError naming the flag for bad input."""
    items: list[Any] = list(steps)
    extra: dict[int, dict] = {}

    def step_index(number: str, flag: str) -> int:
        index = int(number) - 1
        if not 0 <= index < len(steps):
            raise CommandError(f"{flag}: step {number} does not exist (the funnel has {len(steps)} steps)")
        return index

    for part in (optional or "").split(","):
        if part.strip():
            if not part.strip().isdigit():
                raise CommandError(f"--optional: {part.strip()!r} is not a step number (1 is the first step)")
            extra.setdefault(step_index(part.strip(), "--optional"), {})["optional"] = True
    for text in where:
        match = _WHERE.match(text)
        if match is None:
            raise CommandError(
                f"--where {text!r} must be STEP:KEY=VALUE (or ~ contains, > greater, < less; a|b for any of)"
            )
        number, key, sign, raw = match.groups()
        operator = _OPERATORS[sign]
        value: Any = _value(raw)
        if operator == "eq" and "|" in raw:
            operator, value = "in", [_value(part) for part in raw.split("|")]
        elif operator == "contains":
            value = raw
        extra.setdefault(step_index(number, "--where"), {}).setdefault("properties", []).append(
            {"key": key, "operator": operator, "value": value}
        )
    for index, options in extra.items():
        step = steps[index]
        matcher = {"events": step.split("|")} if "|" in step else {"event": step}
        items[index] = {**matcher, **options}
    return items


class Command(ContractCommand):
    help = "Run a funnel query over a workspace's events and print per-step counts and conversion."

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--steps", required=True, help="comma-separated steps: event names (A|B for either) or stage:NAME")
        parser.add_argument("--window", default="14d", help="conversion window: 90s, 30m, 1h, 14d, 2w (max 90d)")
        parser.add_argument("--order", default="sequential", help="sequential (default), strict or any")
        parser.add_argument("--since", help="only events at or after this ISO-8601 time")
        parser.add_argument("--until", help="only events before this ISO-8601 time")
        parser.add_argument("--exclude", action="append", default=[], help="EVENT:a-b, repeatable")
        parser.add_argument("--breakdown", help="campaign, channel, stage, event, property:KEY or contact:KEY")
        parser.add_argument("--attribution", default="first_touch", help="first_touch (default) or last_touch")
        parser.add_argument("--count", default="unique", help="unique (contacts, default) or totals (attempts)")
        parser.add_argument("--hold-constant", help="an event property that must be equal across the steps")
        parser.add_argument("--trend", default="day", help="trend interval: day or week")
        parser.add_argument("--bins", help="time-to-convert histogram bins (default automatic)")
        parser.add_argument("--timeout", type=float, help="time limit in seconds (default FUNNEL_QUERY_TIMEOUT_SECONDS)")
        parser.add_argument("--optional", metavar="N,...",
                            help="step numbers (1 = first) that a contact may skip; middle steps of an ordered funnel")
        parser.add_argument("--where", action="append", default=[], metavar="STEP:KEY=VALUE",
                            help="a property filter on a step, repeatable: = equals (a|b any of), ~ contains, "
                                 "> greater than, < less than; e.g. 3:plan=pro|team, 2:price>20")

    def handle(self, *args, **options) -> None:
        workspace = self.get_workspace(options["workspace"])
        query: dict[str, Any] = {
            "steps": steps_with_options(
                [part.strip() for part in options["steps"].split(",")], options["optional"], options["where"]
            ),
            "window": options["window"],
            "order": options["order"],
            "count": options["count"],
            "exclude": options["exclude"],
            "breakdown": options["breakdown"],
            "attribution": options["attribution"],
            "hold_constant": options["hold_constant"],
            "since": options["since"],
            "until": options["until"],
            "trend_interval": options["trend"],
            "histogram_bins": options["bins"],
        }
        try:
            spec = funnel_spec_parse(query)
            run = funnel_query(workspace=workspace, spec=spec, time_limit=options["timeout"])
        except FunnelDefinitionError as exc:
            raise CommandError(f"{flag_of(exc.field)}: {exc.reason}") from None
        except (FunnelTimeoutError, ReadModelUnavailable) as exc:
            raise CommandError(str(exc)) from None
        for warning in run.payload["warnings"]:
            self.stderr.write(f"warning: {warning}")
        self.emit(options, run.payload, self.human(run.payload))

    @staticmethod
    def human(payload: dict[str, Any]) -> str:
        """A readable step table."""

        def pct(value: float | None) -> str:
            return "-" if value is None else f"{value * 100:.1f}%"

        lines = [f"{'step':<32} {'count':>10} {'from prev':>10} {'from start':>10} {'median time':>12}"]
        for step in payload["steps"]:
            median = step["median_seconds_from_previous"]
            lines.append(
                f"{step['event'][:32]:<32} {step['count']:>10} {pct(step['conversion_from_previous']):>10} "
                f"{pct(step['conversion_from_start']):>10} {'-' if median is None else f'{median:.0f}s':>12}"
            )
        for item in payload.get("breakdown") or []:
            counts = " -> ".join(str(s["count"]) for s in item["steps"])
            lines.append(f"  {item['value'] if item['value'] is not None else '(none)'}: {counts}")
        return "\n".join(lines)
