"""The Celery application: workers drain the spend queue, beat rolls up and resets budgets."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmur.settings")

app = Celery("llmur")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
