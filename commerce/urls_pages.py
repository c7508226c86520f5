"""URL patterns (filled in by the commerce issue)."""

urlpatterns: list = []
