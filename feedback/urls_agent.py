"""The support agents' callback queue at ``/agent/callbacks/``."""

urlpatterns: list = []
