"""The support agents' callback queue at ``/agent/callbacks/``."""

from django.urls import path

from feedback import views_agent

urlpatterns = [
    path("callbacks/", views_agent.queue, name="agent-callbacks"),
    path("callbacks/<int:pk>/", views_agent.callback_page, name="agent-callback"),
    path(
        "callbacks/<int:pk>/<slug:action>/",
        views_agent.callback_action,
        name="agent-callback-action",
    ),
]
