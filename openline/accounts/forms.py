from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.contrib.auth.password_validation import validate_password

from openline.accounts import throttle
from openline.accounts.models import Role, User
from openline.core.ip import request_client_ip


class StaffUserCreateForm(forms.Form):
    username = forms.RegexField(
        regex=r"^[\w.@+-]+$",
        max_length=150,
        error_messages={"invalid": "Use letters, digits and @/./+/-/_ only."},
    )
    display_name = forms.CharField(max_length=150, required=False)
    email = forms.EmailField(required=False)
    # Most new users answer chats; administrators and auditors are chosen on purpose.
    role = forms.ChoiceField(
        choices=Role.choices,
        initial=Role.OPERATOR,
        help_text="Operators answer chats of the Open Channels they belong to; auditors read "
        "and export obtained consents; administrators configure everything.",
    )
    password = forms.CharField(widget=forms.PasswordInput, min_length=10)

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("A user with this username already exists.")
        return username

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password") and cleaned.get("username"):
            try:
                validate_password(cleaned["password"], User(username=cleaned["username"]))
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return cleaned


class StaffUserEditForm(forms.Form):
    display_name = forms.CharField(max_length=150, required=False)
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=Role.choices)
    is_active = forms.BooleanField(required=False, label="Active")


class LoginForm(AuthenticationForm):
    """Sign-in with throttling per account and per IP, and a bound on parallel hashing."""

    error_messages = {
        **AuthenticationForm.error_messages,
        # One message for a wrong password, an unknown user and an inactive one.
        "invalid_login": "Your username and password did not match. Please try again.",
    }

    throttled: throttle.Throttled | None = None
    busy = False

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is None or not password:
            return super().clean()  # nothing to check, nothing hashed
        outcome = throttle.begin_attempt(username=username, ip=request_client_ip(self.request))
        if isinstance(outcome, throttle.Throttled):
            self.throttled = outcome
            raise forms.ValidationError(outcome.message, code="throttled")
        try:
            with throttle.password_check_slot():
                super().clean()
        except throttle.Busy:
            outcome.cancelled()
            self.busy = True
            raise forms.ValidationError(throttle.BUSY_MESSAGE, code="busy") from None
        outcome.succeeded()
        return self.cleaned_data


class OwnPasswordChangeForm(PasswordChangeForm):
    """Old password, new password twice, Django's validators; the new one must differ."""

    throttled: throttle.Throttled | None = None

    def __init__(self, user: User, data=None, *, ip: str = "") -> None:
        super().__init__(user, data)
        self.ip = ip

    def clean_old_password(self):
        # Guessing the old password from a borrowed session counts like guessing at sign-in,
        # and the hash takes a slot like one.
        outcome = throttle.begin_attempt(username=self.user.get_username(), ip=self.ip)
        if isinstance(outcome, throttle.Throttled):
            self.throttled = outcome
            raise forms.ValidationError(outcome.message, code="throttled")
        try:
            with throttle.password_check_slot():
                old_password = super().clean_old_password()
        except throttle.Busy:
            outcome.cancelled()
            raise forms.ValidationError(throttle.BUSY_MESSAGE, code="busy") from None
        outcome.succeeded()
        return old_password

    def clean(self):
        cleaned = super().clean()
        new = cleaned.get("new_password2")
        # old_password is only in cleaned_data once it was checked against the stored hash.
        if new and new == cleaned.get("old_password"):
            self.add_error(
                "new_password2",
                forms.ValidationError(
                    "Choose a password different from the current one.", code="password_unchanged"
                ),
            )
        return cleaned
