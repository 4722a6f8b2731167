"""Dashboard pages built on usage records: overview, usage log, operator view."""

from django.urls import path

from . import views

urlpatterns = [
    path("dashboard/", views.overview, name="dashboard"),
    path("usage/", views.usage_list, name="usage"),
    path("usage/export.csv", views.usage_csv, name="usage-csv"),
    path("usage/<str:request_id>/", views.usage_detail, name="usage-detail"),
    path("ops/", views.ops, name="ops"),
]
