from django import forms

from openline.accounts.models import Role, User
from openline.consent.models import Agreement
from openline.openchannels import appearance, hours
from openline.openchannels.models import (
    DEFAULT_WITHDRAW_KEYWORDS,
    MAX_GREETING,
    ConnectorKind,
    CrmItemKind,
    LauncherPosition,
    MessengerConsentMode,
    color_validator,
)


class OperatorChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: User) -> str:
        return f"{obj} ({obj.username})"


def _operators():
    return User.objects.filter(is_active=True, role__in=[Role.OPERATOR, Role.ADMINISTRATOR])


class OpenChannelForm(forms.Form):
    name = forms.CharField(max_length=120)
    operators = OperatorChoiceField(
        queryset=User.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Operators who answer this Open Channel's conversations.",
    )
    crm_item_kind = forms.ChoiceField(
        choices=CrmItemKind.choices, label="Save new clients to CRM as", initial=CrmItemKind.LEAD
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["operators"].queryset = _operators()


class OpenChannelCreateForm(OpenChannelForm):
    connectors = forms.MultipleChoiceField(
        choices=ConnectorKind.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        initial=[ConnectorKind.LIVECHAT],
    )


class ConsentSettingsForm(forms.Form):
    consent_enabled = forms.BooleanField(
        required=False, label="Send warning about collecting personal data"
    )
    agreement = forms.ModelChoiceField(
        queryset=Agreement.objects.none(),
        required=False,
        label="Consent",
        empty_label="— Choose a consent —",
    )
    # Messenger clients (Telegram, WhatsApp, Facebook Messenger, Viber).
    messenger_consent_mode = forms.ChoiceField(
        required=False,
        choices=MessengerConsentMode.choices,
        initial=MessengerConsentMode.WARNING,
        widget=forms.RadioSelect,
        label="How messenger clients consent",
        help_text=(
            "Warning (the reference behaviour): the client's first message gets the warning "
            "with a link to the consent text; writing again confirms consent, and until then "
            "the client is listed under CRM → Awaiting consent. Buttons: the client must "
            "press “I accept” (or “I decline”, which deletes their data); nothing is "
            "confirmed by simply writing on."
        ),
    )
    messenger_warning_text = forms.CharField(
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Warning text in messengers",
        help_text=(
            "Leave empty for the built-in wording in the client's language. Write {link} "
            "where the link to the consent text goes; it is added at the end if missing."
        ),
    )
    withdraw_keywords = forms.CharField(
        required=False,
        initial=DEFAULT_WITHDRAW_KEYWORDS,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Withdrawal keywords",
        help_text=(
            "One per line. A message that is exactly one of these withdraws the client's "
            "consent (translations of “withdraw consent” are understood too)."
        ),
    )
    unconfirmed_retention_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=3650,
        label="Delete unconfirmed clients after (days)",
        help_text=(
            "Messenger clients who never confirm consent are deleted (CRM item, messages and "
            "profile) this many days after the warning. Empty: kept until deleted by hand."
        ),
    )

    def __init__(self, *args, current=None, **kwargs):
        super().__init__(*args, **kwargs)
        queryset = Agreement.objects.filter(is_active=True)
        if current is not None:
            # Keep a deactivated current choice visible so the form shows the truth.
            queryset = Agreement.objects.filter(is_active=True) | Agreement.objects.filter(
                pk=current.pk
            )
        self.fields["agreement"].queryset = queryset.order_by("name")

    MESSENGER_FIELDS = (
        "messenger_consent_mode",
        "messenger_warning_text",
        "withdraw_keywords",
        "unconfirmed_retention_days",
    )

    def settings(self) -> dict:
        """The cleaned settings to save; a messenger field the request left out stays as is."""
        data = dict(self.cleaned_data)
        for name in self.MESSENGER_FIELDS:
            if name not in self.data or (name == "messenger_consent_mode" and not data[name]):
                data.pop(name, None)
        return data


class AppearanceForm(forms.Form):
    """How a channel's live chat looks, and when operators answer it."""

    display_name = forms.CharField(
        max_length=120,
        required=False,
        label="Name shown to clients",
        help_text="Leave empty to show the Open Channel's name.",
    )
    color = forms.CharField(
        max_length=40,
        label="Colour",
        widget=forms.TextInput(attrs={"type": "color"}),
        help_text="The chat button, the header and the client's messages use it.",
    )
    greeting = forms.CharField(
        max_length=MAX_GREETING,
        required=False,
        label="Greeting",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="The first message clients see. Leave empty for the built-in welcome.",
    )
    launcher_position = forms.ChoiceField(
        choices=LauncherPosition.choices, label="Chat button position"
    )
    hours_enabled = forms.BooleanField(required=False, label="Use working hours")
    hours_timezone = forms.CharField(
        max_length=64,
        label="Time zone",
        widget=forms.TextInput(attrs={"list": "timezones", "autocomplete": "off"}),
        help_text="An IANA time zone, e.g. Europe/Berlin or America/New_York.",
    )
    offline_message = forms.CharField(
        max_length=MAX_GREETING,
        required=False,
        label="Message outside working hours",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Clients can still write; they see this until an operator is back.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for index, day in enumerate(hours.WEEKDAYS):
            self.fields[f"day_{index}"] = forms.CharField(
                required=False,
                label=f"{day} hours",
                widget=forms.TextInput(attrs={"placeholder": "09:00-18:00", "inputmode": "text"}),
            )
            self.fields[f"closed_{index}"] = forms.BooleanField(
                required=False, label=f"{day} closed"
            )

    @classmethod
    def initial_for(cls, channel) -> dict:
        """Return the form's initial data from the channel's settings."""
        initial = {
            "display_name": channel.display_name,
            "color": channel.color,
            "greeting": channel.greeting,
            "launcher_position": channel.launcher_position,
            "hours_enabled": channel.hours_enabled,
            "hours_timezone": channel.hours_timezone,
            "offline_message": channel.offline_message,
        }
        week = channel.working_hours if isinstance(channel.working_hours, list) else []
        if not any(week):
            # A first suggestion: office hours on weekdays.
            week = [[["09:00", "18:00"]]] * 5 + [[], []]
        for index in range(7):
            ranges = week[index] if index < len(week) else []
            initial[f"day_{index}"] = hours.format_day(ranges)
            initial[f"closed_{index}"] = not ranges
        return initial

    def days(self) -> list[dict]:
        """Return the weekday rows for the template: name, hours field, closed field."""
        return [
            {"name": day, "hours": self[f"day_{i}"], "closed": self[f"closed_{i}"]}
            for i, day in enumerate(hours.WEEKDAYS)
        ]

    def clean_color(self) -> str:
        color = self.cleaned_data["color"].strip().lower()
        try:
            color_validator(color)
        except forms.ValidationError:
            raise forms.ValidationError("Enter a colour like #2156d9.") from None
        return color

    def clean_hours_timezone(self) -> str:
        return hours.validate_timezone(self.cleaned_data["hours_timezone"])

    def clean(self):
        cleaned = super().clean()
        week: list[list[list[str]]] = []
        for index in range(7):
            if cleaned.get(f"closed_{index}"):
                week.append([])
                continue
            try:
                ranges = hours.parse_day(cleaned.get(f"day_{index}", ""))
            except forms.ValidationError as exc:
                self.add_error(f"day_{index}", exc)
                ranges = []
            else:
                if not ranges and cleaned.get("hours_enabled"):
                    self.add_error(f"day_{index}", "Enter the hours, or tick Closed.")
            week.append(ranges)
        if cleaned.get("hours_enabled") and not any(week):
            self.add_error(None, "With working hours on, open on at least one day.")
        cleaned["working_hours"] = week
        return cleaned

    def settings(self) -> dict:
        """Return the cleaned values as keyword arguments of ``update_appearance``."""
        return {name: self.cleaned_data[name] for name in appearance.FIELDS}
