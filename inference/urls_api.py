urlpatterns: list = []

# --- jobs: compare ---
from django.urls import path  # noqa: E402

from . import api as jobs_api  # noqa: E402

urlpatterns += [
    path("compare", jobs_api.CompareCreateApi.as_view(), name="api-compare"),
    path("compare/<str:compare_id>", jobs_api.CompareDetailApi.as_view(), name="api-compare-detail"),
]
