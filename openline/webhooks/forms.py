from __future__ import annotations

from django import forms
from django.core.validators import URLValidator

from openline.webhooks.events import EVENT_TYPES


class EndpointForm(forms.Form):
    url = forms.URLField(
        label="URL",
        max_length=500,
        validators=[URLValidator(schemes=["http", "https"])],
        assume_scheme="https",
        help_text="Openline POSTs each event here as JSON, signed as Standard Webhooks describes.",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/openline/webhooks"}),
    )
    description = forms.CharField(label="Description", max_length=200, required=False)
    events = forms.MultipleChoiceField(
        label="Events",
        choices=[(name, name) for name in EVENT_TYPES],
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one event."},
    )
