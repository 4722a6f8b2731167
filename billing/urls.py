from django.urls import path

from . import views

urlpatterns = [
    path("stripe/webhook/", views.stripe_webhook, name="stripe-webhook"),
    path("billing/", views.billing_overview, name="billing"),
    path("billing/topup/", views.billing_topup, name="billing-topup"),
    path("billing/redeem/", views.billing_redeem, name="billing-redeem"),
    path("billing/threshold/", views.billing_threshold, name="billing-threshold"),
]
