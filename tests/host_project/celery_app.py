"""The host's Celery app, as Celery's Django guide sets one up; Partwise's tasks are on it.

Not named celery.py: manage.py runs from this folder, where that name would hide the package.
"""

from celery import Celery

app = Celery("host_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
