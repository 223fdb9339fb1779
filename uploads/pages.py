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


@login_required
@ensure_csrf_cookie
def upload_page(request: HttpRequest) -> HttpResponse:
    return render(request, "uploads/index.html")


# Any user may sign in here (the admin's login page only admits staff).
login_page = auth_views.LoginView.as_view(
    template_name="uploads/login.html", redirect_authenticated_user=True
)
logout_page = auth_views.LogoutView.as_view()
