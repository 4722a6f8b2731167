from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms
from django.utils.translation import gettext_lazy as _


class SignupForm(AllauthSignupForm):
    organization = forms.CharField(
        label=_("Organization name"),
        max_length=120,
        required=False,
        help_text=_("Your team or company. You can rename it later."),
    )
