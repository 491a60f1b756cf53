from django import forms

from openline.accounts.models import Role, User
from openline.consent.models import Agreement
from openline.openchannels.models import (
    DEFAULT_WITHDRAW_KEYWORDS,
    ConnectorKind,
    CrmItemKind,
    MessengerConsentMode,
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
