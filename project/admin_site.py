"""Partwise's own admin site: Django's, named after Partwise.

It lives in `project` (the site), not in the `uploads` app: a host project that installs the
app keeps its own admin header. settings.INSTALLED_APPS names PartwiseAdminConfig in place of
"django.contrib.admin" (Django's documented way to replace the default site).
"""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig


class PartwiseAdminSite(admin.AdminSite):
    """The default admin site with Partwise's name in the header, the title and the index."""

    site_header = "Partwise administration"
    site_title = "Partwise admin"
    index_title = "Uploads, tokens and users"


class PartwiseAdminConfig(AdminConfig):
    """django.contrib.admin, with PartwiseAdminSite as `admin.site`."""

    default_site = "project.admin_site.PartwiseAdminSite"
