"""The ceiling for ``bench/ingest.py``: a bare Django view that inserts one row.

Used as the settings module *and* the URLconf of a second gunicorn
(``DJANGO_SETTINGS_MODULE=bench.bare_urls``), so the project's settings and
middleware stay the same and only the view differs. Never part of the app.
"""

from django.db import connection
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from retention.settings import *  # noqa: F403

ROOT_URLCONF = "bench.bare_urls"
BARE_TABLE = "bench_bare"


@csrf_exempt
def bare_insert(request, slug):
    body = request.body.decode("utf-8", "replace")
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {BARE_TABLE} (body) VALUES (%s) RETURNING id", [body])  # noqa: S608
        row_id = cursor.fetchone()[0]
    return JsonResponse({"id": row_id, "status": "accepted"}, status=202)


urlpatterns = [path("hooks/<str:slug>/", bare_insert)]
