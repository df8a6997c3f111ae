"""The explorer form of the funnel page: the query options as a person types them."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django import forms


class FunnelExplorerForm(forms.Form):
    """Steps and options; `to_query()` gives the dict that `spec.funnel_spec_parse` reads."""

    steps = forms.CharField(help_text="comma-separated: event names, A|B for either, stage:NAME")
    window = forms.CharField(initial="14d", required=False, help_text="90s, 30m, 1h, 14d, 2w")
    order = forms.ChoiceField(choices=[(o, o) for o in ("sequential", "strict", "any")], required=False)
    count = forms.ChoiceField(choices=[("unique", "unique contacts"), ("totals", "total attempts")], required=False)
    exclude = forms.CharField(required=False, help_text="EVENT:a-b, comma-separated")
    breakdown = forms.CharField(required=False, help_text="campaign, channel, stage, event, property:KEY, contact:KEY")
    attribution = forms.ChoiceField(choices=[("first_touch", "first touch"), ("last_touch", "last touch")], required=False)
    hold_constant = forms.CharField(required=False, help_text="event property equal across steps")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    # exclusive, like the marketing page, the API and the commands: [since, until)
    until = forms.DateField(required=False, label="Until (exclusive)", widget=forms.DateInput(attrs={"type": "date"}))
    trend_interval = forms.ChoiceField(choices=[("day", "day"), ("week", "week")], required=False)

    def to_query_string(self) -> dict[str, str]:
        """The submitted fields as given (for links back to this query)."""
        return {name: str(self.data[name]) for name in self.fields if self.data.get(name)}

    def to_query(self) -> dict[str, Any]:
        """The cleaned options as a funnel query."""
        data = self.cleaned_data

        def split(text: str) -> list[str]:
            return [part.strip() for part in (text or "").split(",") if part.strip()]

        return {
            "steps": split(data["steps"]),
            "window": data.get("window") or "14d",
            "order": data.get("order") or "sequential",
            "count": data.get("count") or "unique",
            "exclude": split(data.get("exclude")),
            "breakdown": data.get("breakdown") or None,
            "attribution": data.get("attribution") or "first_touch",
            "hold_constant": data.get("hold_constant") or None,
            "since": data["since"].isoformat() if data.get("since") else None,
            "until": data["until"].isoformat() if data.get("until") else None,
            "trend_interval": data.get("trend_interval") or "day",
        }


def initial_from_definition(definition: dict[str, Any]) -> dict[str, Any]:
    """Form values that reproduce a saved (canonical) definition; filters are shown as the labels."""

    def label(item: dict[str, Any]) -> str:
        return f"stage:{item['stage']}" if item.get("stage") else "|".join(item.get("events", []))

    from funnel_site.dashboard.templatetags.durations import format_duration

    window_text = format_duration(definition.get("window_seconds", 14 * 86400))
    return {
        "steps": ",".join(label(s) for s in definition.get("steps", [])),
        "window": window_text,
        "order": definition.get("order", "sequential"),
        "count": definition.get("count", "unique"),
        "exclude": ",".join(f"{label(e)}:{e['from_step']}-{e['to_step']}" for e in definition.get("exclusions", [])),
        "breakdown": definition.get("breakdown") or "",
        "attribution": definition.get("attribution", "first_touch"),
        "hold_constant": definition.get("hold_constant") or "",
        "since": (definition.get("since") or "")[:10],
        "until": _day(definition.get("until")),
        "trend_interval": definition.get("trend_interval", "day"),
    }


def _day(until: str | None) -> str:
    """The day of an exclusive ISO end (a saved end that is not midnight is shown as its next day)."""
    if not until:
        return ""
    day = date.fromisoformat(until[:10])
    return day.isoformat() if until[11:19] in ("", "00:00:00") else (day + timedelta(days=1)).isoformat()
