"""The upload web page and its sign-in/sign-out pages (Django templates, no build step).

The page uses frontend/client.js (served as the static file partwise/client.js) exactly as an
app developer would; it needs a session, so it requires login and sets the CSRF cookie that
the client sends back as X-CSRFToken.
"""

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from uploads.conf import upload_settings
from uploads.storage.bucket import origin_allowed


def page_origin(request: HttpRequest) -> str:
    """The origin a browser has on this page (scheme and host as Django sees them, i.e. after
    SECURE_PROXY_SSL_HEADER behind a proxy): what it sends S3 as `Origin` with every part."""
    return f"{request.scheme}://{request.get_host()}"


@login_required
@ensure_csrf_cookie
def upload_page(request: HttpRequest) -> HttpResponse:
    """The upload page. It warns up front when the bucket's CORS rule (UPLOADS_CORS_ORIGINS, as
    `setup_storage` writes it) does not admit the page's own origin: the browser would then
    refuse every part, which to the page looks like a network that keeps failing."""
    origin = page_origin(request)
    cors_origins = upload_settings().cors_origins
    context = {
        "page_origin": origin,
        "cors_origins": cors_origins,
        "cors_blocked": not origin_allowed(origin, cors_origins),
    }
    return render(request, "uploads/index.html", context)


# Any user may sign in here (the admin's login page only admits staff).
login_page = auth_views.LoginView.as_view(
    template_name="uploads/login.html", redirect_authenticated_user=True
)
logout_page = auth_views.LogoutView.as_view()
