from django.urls import path

from . import views

urlpatterns = [
    path("v1/models", views.v1_models_list, name="v1-models"),
    path("v1/models/<path:model_id>", views.v1_model_detail, name="v1-model-detail"),
    path("models/", views.catalogue_page, name="models-catalogue"),
]
