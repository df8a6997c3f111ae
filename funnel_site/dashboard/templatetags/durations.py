"""`{{ seconds|duration }}`: seconds written the way the commands read them (90s, 30m, 1h, 14d, 2w)."""

from django import template

register = template.Library()

_UNITS = (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60))


@register.filter
def duration(seconds) -> str:
    """The largest unit that divides the duration exactly; seconds otherwise."""
    try:
        total = int(float(seconds))
    except (TypeError, ValueError):
        return ""
    for suffix, size in _UNITS:
        if total and total % size == 0:
            return f"{total // size}{suffix}"
    return f"{total}s"
