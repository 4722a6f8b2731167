from django.urls import path

from . import views

# The relay's POST endpoints; config.asgi serves these paths without the middleware stack
# (config/relay_asgi.py).
relay_urlpatterns = [
    path("v1/chat/completions", views.chat_completions, name="v1-chat-completions"),
    path("v1/messages", views.messages, name="v1-messages"),
    # The official Anthropic SDK appends /v1/messages to its base URL; the seed article's
    # sample uses base_url=".../v1", so it posts here.
    path("v1/v1/messages", views.messages, name="v1-v1-messages"),
    path("v1/embeddings", views.embeddings, name="v1-embeddings"),
    path("v1/images/generations", views.images_generations, name="v1-images-generations"),
    path("v1/images/edits", views.images_edits, name="v1-images-edits"),
]
urlpatterns = list(relay_urlpatterns)

# --- jobs: /v1/files, /v1/batches (OpenAI shapes), the compare and batches pages ---
from . import api_v1_jobs, views_jobs  # noqa: E402

urlpatterns += [
    path("v1/files", api_v1_jobs.files, name="v1-files"),
    path("v1/files/<str:file_id>", api_v1_jobs.file_detail, name="v1-file-detail"),
    path("v1/files/<str:file_id>/content", api_v1_jobs.file_content, name="v1-file-content"),
    path("v1/batches", api_v1_jobs.batches, name="v1-batches"),
    path("v1/batches/<str:batch_id>", api_v1_jobs.batch_detail, name="v1-batch-detail"),
    path("v1/batches/<str:batch_id>/cancel", api_v1_jobs.batch_cancel, name="v1-batch-cancel"),
    path("compare/", views_jobs.compare_page, name="compare"),
    path("compare/<str:compare_id>/", views_jobs.compare_detail_page, name="compare-detail"),
    path("batches/", views_jobs.batches_page, name="batches"),
]
