"""WSGI entry point, for the admin behind a classic WSGI server; /v1 wants ASGI (llmur.asgi)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmur.settings")
application = get_wsgi_application()
