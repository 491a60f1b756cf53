"""Forms of the CRM pages; the services re-validate everything they are given."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from openline.accounts.models import Role, User
from openline.crm.normalize import normalize_email, normalize_phone
from openline.openchannels.models import CrmItemKind, OpenChannel


def _check(normalizer, value: str) -> str:
    value = (value or "").strip()
    if value:
        normalizer(value)
    return value


def _lines(value: str) -> list[str]:
    return [line.strip() for line in (value or "").replace(",", "\n").splitlines() if line.strip()]


class SaveToCrmForm(forms.Form):
    """Save to CRM: the client's data, prefilled from what they gave in the chat."""

    name = forms.CharField(max_length=200, required=False)
    email = forms.CharField(
        max_length=254, required=False, widget=forms.EmailInput(attrs={"autocomplete": "off"})
    )
    phone = forms.CharField(
        max_length=40,
        required=False,
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
        help_text="Digits, spaces and + ( ) - are fine; matching uses the digits only.",
    )
    kind = forms.ChoiceField(label="Save as", choices=CrmItemKind.choices, widget=forms.RadioSelect)

    def clean_email(self) -> str:
        return _check(normalize_email, self.cleaned_data.get("email", ""))

    def clean_phone(self) -> str:
        return _check(normalize_phone, self.cleaned_data.get("phone", ""))


class ItemForm(forms.Form):
    """Edit a CRM item's name, responsible operator, emails and phones."""

    name = forms.CharField(max_length=200, required=False)
    responsible = forms.ModelChoiceField(
        label="Responsible operator",
        queryset=User.objects.filter(is_active=True, role__in=[Role.OPERATOR, Role.ADMINISTRATOR]),
        required=False,
        empty_label="Nobody",
    )
    emails = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One email per line.",
    )
    phones = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One phone number per line.",
    )

    def clean_emails(self) -> list[str]:
        values = _lines(self.cleaned_data.get("emails", ""))
        errors = []
        for value in values:
            try:
                normalize_email(value)
            except ValidationError:
                errors.append(f"“{value}” is not a valid email address.")
        if errors:
            raise ValidationError(errors)
        return values

    def clean_phones(self) -> list[str]:
        values = _lines(self.cleaned_data.get("phones", "").replace(",", "\n"))
        errors = []
        for value in values:
            try:
                normalize_phone(value)
            except ValidationError as exc:
                errors.append(f"“{value}”: {exc.messages[0]}")
        if errors:
            raise ValidationError(errors)
        return values


class NoteForm(forms.Form):
    text = forms.CharField(
        label="Add a note",
        max_length=5000,
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": "What did you agree with the client?"}
        ),
    )


CONSENT_FILTERS = [
    ("", "Any consent state"),
    ("given", "Consent given"),
    ("withdrawn", "Consent withdrawn"),
    ("none", "No consent"),
]


class ItemFilterForm(forms.Form):
    """Search and filters of the CRM list."""

    q = forms.CharField(
        label="Search",
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Name, phone or email"}),
    )
    kind = forms.ChoiceField(
        label="Kind", required=False, choices=[("", "Leads and contacts"), *CrmItemKind.choices]
    )
    channel = forms.ModelChoiceField(
        label="Open Channel",
        queryset=OpenChannel.objects.none(),
        required=False,
        empty_label="All channels",
    )
    consent = forms.ChoiceField(label="Consent", required=False, choices=CONSENT_FILTERS)

    def __init__(self, *args, channels=None, **kwargs):
        super().__init__(*args, **kwargs)
        if channels is not None:
            self.fields["channel"].queryset = channels
