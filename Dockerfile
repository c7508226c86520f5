FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY retention ./retention
COPY commerce ./commerce
COPY segments ./segments
COPY journeys ./journeys
COPY messaging ./messaging
COPY feedback ./feedback
COPY scoring ./scoring
COPY experiments ./experiments
COPY insights ./insights
RUN pip install .
COPY . .

RUN DJANGO_SECRET_KEY=collectstatic-only DJANGO_DEBUG=false python manage.py collectstatic --noinput

RUN useradd --system --uid 1000 app && chown -R app /app
USER app
EXPOSE 8000
CMD ["gunicorn", "retention.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "5", "--worker-class", "sync", "--access-logfile", "-", "--logger-class", "retention.logs.GunicornLogger"]
