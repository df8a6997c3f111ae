"""Template filters of the web UI: one date format, thousands separators, rates, labels.

Every page writes a moment as `2026-01-02 14:05` (in UTC, said once in the footer), a day as
`2026-01-02`, a count as `12,345` and a rate as `45.7%`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from django import template
from django.utils import timezone

register = template.Library()

DATE_FORMAT = "%Y-%m-%d"
DATETIME_FORMAT = "%Y-%m-%d %H:%M"


def _moment(value):
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return value if isinstance(value, date) else None


@register.filter
def when(value) -> str:
    """A moment as `YYYY-MM-DD HH:MM` in UTC; '–' for none."""
    moment = _moment(value)
    if moment is None:
        return "–"
    if isinstance(moment, datetime):
        if timezone.is_aware(moment):
            moment = moment.astimezone(UTC)
        return moment.strftime(DATETIME_FORMAT)
    return moment.strftime(DATE_FORMAT)


@register.filter
def day(value) -> str:
    """A moment or date as `YYYY-MM-DD`; '–' for none."""
    moment = _moment(value)
    return "–" if moment is None else moment.strftime(DATE_FORMAT)


@register.filter
def num(value, decimals=None) -> str:
    """12345 -> `12,345`; 1234.5 with `num:1` -> `1,234.5`; text is returned as it is."""
    if value is None or value == "":
        return "–"
    if isinstance(value, bool):
        return str(value)
    try:
        if decimals is None and (isinstance(value, int) or float(value).is_integer()):
            return f"{int(float(value)):,}"
        return f"{float(value):,.{int(decimals if decimals is not None else 1)}f}"
    except (TypeError, ValueError):
        return str(value)


@register.filter
def pct(rate, decimals=1) -> str:
    """0.4567 -> `45.7%`; '–' for none."""
    try:
        return f"{float(rate) * 100:.{int(decimals)}f}%"
    except (TypeError, ValueError):
        return "–"


@register.simple_tag(takes_context=True)
def optional_include(context, template_name: str) -> str:
    """Render `template_name` with the current context when it exists, else nothing.

    Lets a page show a partial another part of the product provides (the tournament's scoreboard on
    the model page) as soon as that part is installed, without failing while it is not.
    """
    from django.template import TemplateDoesNotExist
    from django.template.loader import get_template

    try:
        partial = get_template(template_name)
    except TemplateDoesNotExist:
        return ""
    return partial.render(context.flatten(), context.get("request"))
