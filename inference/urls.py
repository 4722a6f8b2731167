from django.urls import path

from . import views

urlpatterns = [
    path("v1/chat/completions", views.chat_completions, name="v1-chat-completions"),
    path("v1/messages", views.messages, name="v1-messages"),
    # The official Anthropic SDK appends /v1/messages to its base URL; the seed article's
    # sample uses base_url=".../v1", so it posts here.
    path("v1/v1/messages", views.messages, name="v1-v1-messages"),
    path("v1/embeddings", views.embeddings, name="v1-embeddings"),
    path("v1/images/generations", views.images_generations, name="v1-images-generations"),
    path("v1/images/edits", views.images_edits, name="v1-images-edits"),
]
