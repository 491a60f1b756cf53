from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

LANGUAGE_CHOICES = [(code, f"{name} ({code})") for code, name in settings.LANGUAGES]


class AgreementForm(forms.Form):
    """The "Name and text" tab."""

    name = forms.CharField(max_length=200, help_text="A name to find this consent later.")
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 12}),
        help_text="The privacy-policy text customers will see.",
    )
    allow_html = forms.BooleanField(
        required=False,
        label="Allow HTML in agreement text",
        help_text="Paragraphs, lists, emphasis and links are kept; anything else is removed.",
    )
    language = forms.ChoiceField(
        choices=LANGUAGE_CHOICES,
        initial="en",
        label="Language of this text",
        help_text="Clients whose language has no translation see this one.",
    )


class TranslationForm(forms.Form):
    """Add or change the text of one language (the "Languages" tab)."""

    language = forms.ChoiceField(choices=LANGUAGE_CHOICES, label="Language")
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 10}), label="Text")


class PreviewForm(forms.Form):
    text = forms.CharField(required=False, max_length=200_000)
    allow_html = forms.BooleanField(required=False)


class AgreementEditForm(forms.Form):
    """The "Name and text" tab of an existing consent (its default language)."""

    name = forms.CharField(max_length=200, help_text="A name to find this consent later.")
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 12}),
        help_text="The privacy-policy text customers will see. Changing it makes a new version; "
        "records keep pointing at the version their client saw.",
    )
    allow_html = forms.BooleanField(
        required=False,
        label="Allow HTML in agreement text",
        help_text="Paragraphs, lists, emphasis and links are kept; anything else is removed.",
    )


def add_errors(form: forms.Form, exc: ValidationError) -> None:
    """Show a service's ValidationError on the form: on its field, else above the form."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)
