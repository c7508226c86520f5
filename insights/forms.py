"""The dashboard's filters (GET parameters), checked before anything is read."""

from __future__ import annotations

from datetime import date, timedelta

from django import forms

from commerce.models import Channel
from insights.selectors import default_range, filter_segments, tenant_today
from retention.models import Tenant

MAX_DAYS = 731  # two years in one range
EARLIEST = date(2000, 1, 1)


class DashboardFilters(forms.Form):
    start = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    end = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )
    segment = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=None,
        label="Segment",
        error_messages={
            "invalid_choice": "Choose one of this store's segments (%(value)s is not)."
        },
    )
    channel = forms.ChoiceField(
        required=False,
        label="Channel",
        choices=[("", "All channels"), *Channel.choices],
        error_messages={"invalid_choice": "Choose email, SMS or in-app (%(value)s is not)."},
    )

    def __init__(self, data, *, tenant: Tenant) -> None:
        super().__init__(data)
        self.tenant = tenant
        self.fields["segment"].choices = [("", "All customers"), *filter_segments(tenant=tenant)]

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        default_start, default_end = default_range(self.tenant)
        end = cleaned.get("end") or default_end
        start = cleaned.get("start") or (
            end - (default_end - default_start) if cleaned.get("end") else default_start
        )
        latest = tenant_today(self.tenant) + timedelta(days=366)
        for name, value in (("start", start), ("end", end)):
            if not EARLIEST <= value <= latest:
                self.add_error(
                    name,
                    f"Give a date between {EARLIEST.isoformat()} and {latest.isoformat()}.",
                )
        if start > end:
            self.add_error("start", "The start date must be on or before the end date.")
        elif (end - start).days + 1 > MAX_DAYS:
            self.add_error("start", f"Choose a range of at most {MAX_DAYS} days.")
        cleaned["start"], cleaned["end"] = start, end
        return cleaned

    def show_effective(self) -> None:
        """Show the dates actually used (the defaults filled in) in the inputs."""
        shown = self.data.copy()
        shown["start"] = self.cleaned_data["start"].isoformat()
        shown["end"] = self.cleaned_data["end"].isoformat()
        self.data = shown

    def error_lines(self) -> list[str]:
        """Each problem in one sentence that names the filter."""
        lines = []
        for name, errors in self.errors.items():
            label = self.fields[name].label if name in self.fields else ""
            lines.extend(f"{label}: {e}" if label else str(e) for e in errors)
        return lines
