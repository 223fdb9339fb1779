from typing import TYPE_CHECKING

from django.contrib import admin
from django.http import HttpRequest

from .models import ApiToken

if TYPE_CHECKING:
    # ModelAdmin is generic in django-stubs only (Django's class is not subscriptable).
    ApiTokenModelAdmin = admin.ModelAdmin[ApiToken]
else:
    ApiTokenModelAdmin = admin.ModelAdmin


@admin.register(ApiToken)
class ApiTokenAdmin(ApiTokenModelAdmin):
    """Tokens can be seen and revoked (deleted) here, never created: a key is shown only once."""

    list_display = ["name", "user", "prefix", "created_at", "last_used_at"]
    list_filter = ["created_at"]
    search_fields = ["name", "user__username", "prefix"]
    readonly_fields = ["id", "user", "name", "prefix", "created_at", "last_used_at"]
    exclude = ["digest"]

    def has_add_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False
