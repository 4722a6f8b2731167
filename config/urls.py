from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import views as account_views

api_patterns = [
    path("", include("accounts.urls_api")),
    path("", include("billing.urls_api")),
    path("", include("models_catalog.urls_api")),
    path("", include("inference.urls_api")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("", account_views.landing, name="landing"),
    path("", include("config.health")),  # /healthz, /readyz, /metrics
    path("", include("accounts.urls_web")),  # organization, keys, quickstart pages
    path("", include("inference.dashboard.urls")),  # overview, usage, operator view
    path("organizations/switch/", account_views.organization_switch, name="organization-switch"),
    path("invitations/<str:token>/", account_views.invitation_accept, name="invitation-accept"),
    path("accounts/", include("allauth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
    path("", include("billing.urls")),
    path("", include("models_catalog.urls")),
    path("", include("inference.urls")),
]
