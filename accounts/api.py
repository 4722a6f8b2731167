"""Management API for organizations, members, invitations and API keys (``/api/``)."""

from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import PermissionDenied
from config.pagination import page_of, paginated_response

from . import selectors, services
from .api_context import HasOrgPermission, api_context
from .authentication import ApiKeyUser
from .current import current_membership, current_membership_set
from .models import Role
from .permissions import Perm


class SessionOnly(IsAuthenticated):
    """Endpoints about people (members, invitations, switching) need a signed-in user, not a key."""

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        if isinstance(request.user, ApiKeyUser):
            raise PermissionDenied(_("This endpoint needs a signed-in user, not an API key."))
        return True


# --- organizations ---------------------------------------------------------------------


class _OrganizationOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    slug = serializers.CharField()
    pricing_plan = serializers.CharField()
    created_at = serializers.DateTimeField()


class OrganizationCurrentApi(APIView):
    permission_classes = [HasOrgPermission.of(Perm.ORG_VIEW)]

    class OutputSerializer(_OrganizationOut):
        role = serializers.CharField(allow_null=True)
        permissions = serializers.ListField(child=serializers.CharField())

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=120)

    @extend_schema(responses=OutputSerializer, operation_id="organization_current")
    def get(self, request):
        ctx = api_context(request)
        return Response(self._render(ctx))

    @extend_schema(request=InputSerializer, responses=OutputSerializer, operation_id="organization_update")
    def patch(self, request):
        ctx = api_context(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.organization_update(membership=ctx.require_membership(), name=data.validated_data["name"])
        return Response(self._render(api_context(request)))

    def _render(self, ctx):
        org = ctx.org
        return self.OutputSerializer(
            {
                "id": org.id,
                "name": org.name,
                "slug": org.slug,
                "pricing_plan": org.pricing_plan,
                "created_at": org.created_at,
                "role": ctx.membership.role if ctx.membership else None,
                "permissions": sorted(ctx.perms),
            }
        ).data


class OrganizationListApi(APIView):
    permission_classes = [SessionOnly]

    class OutputSerializer(_OrganizationOut):
        role = serializers.CharField()
        current = serializers.BooleanField()

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=120)

    @extend_schema(responses=OutputSerializer(many=True), operation_id="organizations_list")
    def get(self, request):
        membership = current_membership(request)
        current = membership.organization if membership else None
        memberships = request.user.memberships.select_related("organization").order_by("organization__name")
        rows = [
            {
                **{
                    f: getattr(m.organization, f)
                    for f in ("id", "name", "slug", "pricing_plan", "created_at")
                },
                "role": m.role,
                "current": current is not None and m.organization_id == current.id,
            }
            for m in memberships
        ]
        return Response(self.OutputSerializer(rows, many=True).data)

    @extend_schema(
        request=InputSerializer, responses={201: _OrganizationOut}, operation_id="organizations_create"
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        org = services.organization_create(owner=request.user, name=data.validated_data["name"])
        return Response(_OrganizationOut(org).data, status=status.HTTP_201_CREATED)


class OrganizationSwitchApi(APIView):
    permission_classes = [SessionOnly]

    class InputSerializer(serializers.Serializer):
        slug = serializers.SlugField()

    @extend_schema(request=InputSerializer, responses=_OrganizationOut, operation_id="organizations_switch")
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = selectors.membership_for(user=request.user, slug=data.validated_data["slug"])
        current_membership_set(request, membership)
        return Response(_OrganizationOut(membership.organization).data)


# --- API keys -------------------------------------------------------------------------


class _ApiKeyOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    created_by = serializers.EmailField(source="created_by.email", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    is_active = serializers.BooleanField()
    spend_cap_units = serializers.IntegerField(allow_null=True)
    spent_units = serializers.IntegerField()
    allowed_models = serializers.ListField(child=serializers.CharField())
    rpm_limit = serializers.IntegerField(allow_null=True)
    tpm_limit = serializers.IntegerField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)


class _ApiKeyLimitsIn(serializers.Serializer):
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    spend_cap_units = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=128), required=False, allow_null=True, max_length=200
    )
    rpm_limit = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=10_000_000)
    tpm_limit = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=10**12)


class ApiKeyListCreateApi(APIView):
    class InputSerializer(_ApiKeyLimitsIn):
        name = serializers.CharField(max_length=100)

    class CreatedSerializer(_ApiKeyOut):
        secret = serializers.CharField(help_text="Shown once; store it now.")

    def get_permissions(self):
        perm = Perm.KEYS_CREATE if self.request.method == "POST" else Perm.ORG_VIEW
        return [HasOrgPermission.of(perm)()]

    @extend_schema(responses=page_of(_ApiKeyOut), operation_id="keys_list")
    def get(self, request):
        ctx = api_context(request)
        return paginated_response(request, self, selectors.api_keys_for_org(org=ctx.org), _ApiKeyOut)

    @extend_schema(request=InputSerializer, responses={201: CreatedSerializer}, operation_id="keys_create")
    def post(self, request):
        ctx = api_context(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key, secret = services.api_key_create(actor=ctx.require_membership(), **data.validated_data)
        key.secret = secret  # shown once, never stored
        return Response(self.CreatedSerializer(key).data, status=status.HTTP_201_CREATED)


class ApiKeyDetailApi(APIView):
    permission_classes = [HasOrgPermission.of(Perm.ORG_VIEW)]

    class InputSerializer(_ApiKeyLimitsIn):
        name = serializers.CharField(max_length=100, required=False)

    @extend_schema(responses=_ApiKeyOut, operation_id="keys_retrieve")
    def get(self, request, key_id: int):
        ctx = api_context(request)
        return Response(_ApiKeyOut(selectors.api_key_get(org=ctx.org, key_id=key_id)).data)

    @extend_schema(request=InputSerializer, responses=_ApiKeyOut, operation_id="keys_update")
    def patch(self, request, key_id: int):
        ctx = api_context(request)
        key = selectors.api_key_get(org=ctx.org, key_id=key_id)
        data = self.InputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        key = services.api_key_update(actor=ctx.require_membership(), key=key, **data.validated_data)
        return Response(_ApiKeyOut(key).data)


class ApiKeyRevokeApi(APIView):
    permission_classes = [HasOrgPermission.of(Perm.ORG_VIEW)]

    @extend_schema(request=None, responses=_ApiKeyOut, operation_id="keys_revoke")
    def post(self, request, key_id: int):
        ctx = api_context(request)
        key = selectors.api_key_get(org=ctx.org, key_id=key_id)
        key = services.api_key_revoke(actor=ctx.require_membership(), key=key)
        return Response(_ApiKeyOut(key).data)


# --- members ----------------------------------------------------------------------------


class _MemberOut(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField(source="user.email")
    name = serializers.CharField(source="user.name")
    role = serializers.CharField()
    created_at = serializers.DateTimeField()


class MemberListApi(APIView):
    permission_classes = [SessionOnly, HasOrgPermission.of(Perm.MEMBERS_VIEW)]

    @extend_schema(responses=page_of(_MemberOut), operation_id="members_list")
    def get(self, request):
        ctx = api_context(request)
        return paginated_response(request, self, selectors.members_for_org(org=ctx.org), _MemberOut)


class MemberDetailApi(APIView):
    permission_classes = [SessionOnly, HasOrgPermission.of(Perm.MEMBERS_VIEW)]

    class InputSerializer(serializers.Serializer):
        role = serializers.ChoiceField(choices=Role.choices)

    @extend_schema(responses=_MemberOut, operation_id="members_retrieve")
    def get(self, request, member_id: int):
        ctx = api_context(request)
        return Response(_MemberOut(selectors.member_get(org=ctx.org, membership_id=member_id)).data)

    @extend_schema(request=InputSerializer, responses=_MemberOut, operation_id="members_change_role")
    def patch(self, request, member_id: int):
        ctx = api_context(request)
        target = selectors.member_get(org=ctx.org, membership_id=member_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        target = services.membership_role_change(
            actor=ctx.require_membership(), target=target, role=data.validated_data["role"]
        )
        return Response(_MemberOut(target).data)

    @extend_schema(responses={204: None}, operation_id="members_remove")
    def delete(self, request, member_id: int):
        ctx = api_context(request)
        target = selectors.member_get(org=ctx.org, membership_id=member_id)
        services.membership_remove(actor=ctx.require_membership(), target=target)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- invitations ------------------------------------------------------------------------


class _InvitationOut(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    role = serializers.CharField()
    status = serializers.CharField()
    invited_by = serializers.EmailField(source="invited_by.email", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()


class InvitationListCreateApi(APIView):
    permission_classes = [SessionOnly, HasOrgPermission.of(Perm.MEMBERS_VIEW)]

    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        role = serializers.ChoiceField(choices=[Role.MEMBER, Role.ADMIN], default=Role.MEMBER)

    @extend_schema(responses=page_of(_InvitationOut), operation_id="invitations_list")
    def get(self, request):
        ctx = api_context(request)
        return paginated_response(request, self, selectors.invitations_for_org(org=ctx.org), _InvitationOut)

    @extend_schema(
        request=InputSerializer, responses={201: _InvitationOut}, operation_id="invitations_create"
    )
    def post(self, request):
        ctx = api_context(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        invitation, _token = services.invitation_create(actor=ctx.require_membership(), **data.validated_data)
        return Response(_InvitationOut(invitation).data, status=status.HTTP_201_CREATED)


class InvitationRevokeApi(APIView):
    permission_classes = [SessionOnly, HasOrgPermission.of(Perm.MEMBERS_VIEW)]

    @extend_schema(request=None, responses=_InvitationOut, operation_id="invitations_revoke")
    def post(self, request, invitation_id: int):
        ctx = api_context(request)
        invitation = selectors.invitation_get(org=ctx.org, invitation_id=invitation_id)
        invitation = services.invitation_revoke(actor=ctx.require_membership(), invitation=invitation)
        return Response(_InvitationOut(invitation).data)


class InvitationAcceptApi(APIView):
    permission_classes = [SessionOnly]

    class InputSerializer(serializers.Serializer):
        token = serializers.CharField(max_length=200)

    @extend_schema(
        request=InputSerializer,
        responses=inline_serializer(
            "InvitationAccepted", {"organization": _OrganizationOut(), "role": serializers.CharField()}
        ),
        operation_id="invitations_accept",
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.invitation_accept(token=data.validated_data["token"], user=request.user)
        current_membership_set(request, membership)
        return Response(
            {"organization": _OrganizationOut(membership.organization).data, "role": membership.role}
        )
