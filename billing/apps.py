from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        # allauth's extension point (not a domain signal of ours): the signup credit
        # follows e-mail confirmation, so ``accounts`` never imports ``billing``.
        from allauth.account.signals import email_confirmed

        from .receivers import grant_signup_credit_on_email_confirmed

        email_confirmed.connect(grant_signup_credit_on_email_confirmed, dispatch_uid="billing.signup_credit")
