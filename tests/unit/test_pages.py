"""The upload page and its sign-in page (the browser tier drives them in tests/e2e)."""

from django.contrib.staticfiles import finders
from django.urls import reverse

from tests.factories import PASSWORD


def test_the_upload_page_sends_an_anonymous_visitor_to_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next=/"


def test_any_user_can_sign_in_and_lands_on_the_upload_page(client, user):
    # The admin's login page only admits staff; this one admits every user.
    assert not user.is_staff
    response = client.post(
        reverse("login"), {"username": "alice", "password": PASSWORD, "next": "/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_a_wrong_password_is_told_in_plain_words(client, user):
    response = client.post(reverse("login"), {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "do not match" in response.content.decode()


def test_the_upload_page_loads_the_client_module_and_sets_the_csrf_cookie(client, user):
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<script type="module" src="/static/partwise/page.js">' in page
    assert 'data-endpoint="/api/uploads/"' in page
    assert '<label for="file-input"' in page
    assert "csrftoken" in response.cookies


def test_client_js_is_served_as_the_same_file_app_developers_embed(settings):
    served = finders.find("partwise/client.js")
    assert served is not None
    with (
        open(served, encoding="utf-8") as static,
        open(settings.BASE_DIR / "frontend" / "client.js", encoding="utf-8") as canonical,
    ):
        assert static.read() == canonical.read()


def test_sign_out_needs_a_post_and_returns_to_sign_in(client, user):
    client.force_login(user)
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert client.get("/").status_code == 302
