from django import forms

from openline.accounts.models import Role, User
from openline.consent.models import Agreement
from openline.openchannels.models import ConnectorKind, CrmItemKind


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

    def __init__(self, *args, current=None, **kwargs):
        super().__init__(*args, **kwargs)
        queryset = Agreement.objects.filter(is_active=True)
        if current is not None:
            # Keep a deactivated current choice visible so the form shows the truth.
            queryset = Agreement.objects.filter(is_active=True) | Agreement.objects.filter(
                pk=current.pk
            )
        self.fields["agreement"].queryset = queryset.order_by("name")
