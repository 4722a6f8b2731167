from django.urls import path

from . import api

urlpatterns = [
    path("models/recommend", api.ModelRecommendApi.as_view(), name="api-models-recommend"),
    path("models/estimate", api.CostEstimateApi.as_view(), name="api-models-estimate"),
]
