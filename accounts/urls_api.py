from django.urls import path

from . import api

urlpatterns = [
    path("organization", api.OrganizationCurrentApi.as_view(), name="api-organization"),
    path("organizations", api.OrganizationListApi.as_view(), name="api-organizations"),
    path("organizations/switch", api.OrganizationSwitchApi.as_view(), name="api-organizations-switch"),
    path("keys", api.ApiKeyListCreateApi.as_view(), name="api-keys"),
    path("keys/<int:key_id>", api.ApiKeyDetailApi.as_view(), name="api-key-detail"),
    path("keys/<int:key_id>/revoke", api.ApiKeyRevokeApi.as_view(), name="api-key-revoke"),
    path("members", api.MemberListApi.as_view(), name="api-members"),
    path("members/<int:member_id>", api.MemberDetailApi.as_view(), name="api-member-detail"),
    path("invitations", api.InvitationListCreateApi.as_view(), name="api-invitations"),
    path("invitations/accept", api.InvitationAcceptApi.as_view(), name="api-invitations-accept"),
    path(
        "invitations/<int:invitation_id>/revoke",
        api.InvitationRevokeApi.as_view(),
        name="api-invitation-revoke",
    ),
]
