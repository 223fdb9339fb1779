from django.apps import AppConfig


class DevConfig(AppConfig):
    """Installed so that Django finds the `rundev` command; it has no models."""

    name = "project.dev"
    label = "partwise_dev"
    verbose_name = "Development"
