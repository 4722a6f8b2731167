"""Web pages of the accounts app (included by inference.dashboard.urls)."""

from django.urls import path

from . import views

urlpatterns = [
    path("organization/", views.organization_page, name="organization"),
    path("organization/new/", views.organization_create, name="organization-create"),
    path("organization/rename/", views.organization_rename, name="organization-rename"),
    path("organization/invitations/", views.invitation_create, name="invitation-create"),
    path(
        "organization/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation-revoke",
    ),
    path("organization/members/<int:membership_id>/role/", views.member_role_change, name="member-role"),
    path("organization/members/<int:membership_id>/remove/", views.member_remove, name="member-remove"),
    path("keys/", views.keys_page, name="keys"),
    path("keys/<int:key_id>/", views.key_update, name="key-update"),
    path("keys/<int:key_id>/revoke/", views.key_revoke, name="key-revoke"),
    path("quickstart/", views.quickstart, name="quickstart"),
]
