"""GET /health/: whether this web process can serve, for load balancers and orchestrators.

200 `{"status": "ok"}` when the process answers and its database does (one `SELECT 1`); 503
`{"code": "database_unavailable"}` otherwise, so a balancer stops sending it requests. S3 and
Redis are left out on purpose: every node shares them, so their outage is not a reason to take
one node out of rotation (and a balancer taking them all out would turn a degraded service into
none). No authentication, no throttle, no session: it is called every few seconds.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger("uploads.health")


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """200 when this process and its database answer, else 503 with a code."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        logger.warning("health: the database does not answer: %s", error)
        return JsonResponse(
            {"code": "database_unavailable", "detail": "The database does not answer."},
            status=503,
        )
    return JsonResponse({"status": "ok"})
