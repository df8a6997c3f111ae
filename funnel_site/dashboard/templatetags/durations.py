"""`{{ seconds|duration }}`: seconds written the way the commands read them (90s, 30m, 1h, 7d, 28d)."""

from django import template

register = template.Library()

# Days before weeks: people enter 7d, 14d and 28d, and a page should show what they typed, not 1w / 4w.
_UNITS = (("d", 86400), ("h", 3600), ("m", 60))


def format_duration(seconds) -> str:
    """The largest unit up to days that divides the duration exactly; seconds otherwise ('' if not a number)."""
    try:
        total = int(float(seconds))
    except (TypeError, ValueError):
        return ""
    for suffix, size in _UNITS:
        if total and total % size == 0:
            return f"{total // size}{suffix}"
    return f"{total}s"


@register.filter
def duration(seconds) -> str:
    """The template filter of `format_duration`."""
    return format_duration(seconds)
