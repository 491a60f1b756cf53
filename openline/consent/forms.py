from django import forms


class AgreementForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="A name to find this consent later.")
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10}),
        help_text="The privacy-policy text customers will see.",
    )
    allow_html = forms.BooleanField(required=False, label="Allow HTML in agreement text")
