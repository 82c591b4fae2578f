"""Property-based hostile input over every form and query parameter: never a 5xx or a
stack trace, and a refused request stores nothing."""

from __future__ import annotations

import pytest
from conftest import AuthActions, add_user, csrf_token_from
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from osauth.extensions import db

NASTY = ["", " ", "\x00", "a\x00b", "\u202e", "\u200b", "\ufeff", "ﬁ", "İ", "𝔞𝔡𝔪𝔦𝔫",
         "'; DROP TABLE users; --", "<script>alert(1)</script>", "%", "_", "\\", "../../etc",
         "0", "-1", "1e9", "99999999999999999999", "NaN", "y", "on", "x" * 2000]
values = st.one_of(st.text(st.characters(exclude_categories=("Cs",)), max_size=200),
                   st.sampled_from(NASTY))
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

# (method, path, CSRF page, fields); "{user_id}" is alice's id. The first two are sent by an
# anonymous visitor, the rest by a signed-in super admin.
ANONYMOUS = {"/login", "/otp-reset"}
FORMS = [
    ("POST", "/login", "/login", ["login_name", "password", "otp"]),
    ("POST", "/otp-reset", "/otp-reset", ["login_name"]),
    ("POST", "/settings/email", "/settings/email",
     ["smtp_host", "smtp_port", "connection_security", "smtp_username", "smtp_password",
      "clear_password", "sender", "notifications"]),
    ("POST", "/settings/authentication/policy", "/settings/authentication",
     ["issuer", "drift", "lockout_threshold", "lockout_minutes", "reset_link_minutes"]),
    ("POST", "/settings/authentication/two-factor", "/settings/authentication",
     ["enable", "disable", "confirm"]),
    ("POST", "/settings/users/new", "/settings/users/new",
     ["login_name", "email", "first_name", "last_name", "password", "super_admin"]),
    ("POST", "/settings/users/{user_id}/unlock", "/settings/users", ["x"]),
    ("POST", "/profile/notifications", "/profile", ["email_notifications"]),
    ("GET", "/settings/users", None, ["q", "state", "locked", "notifications_off", "page",
                                      "per_page"]),
    ("GET", "/settings/audit", None, ["user", "kind", "page", "per_page"]),
    ("GET", "/login", None, ["next"]),
]
# Refusals that record something on purpose: failed sign-ins are counted and audited.
RECORDED = {("/login", 401), ("/login", 403)}


def snapshot() -> dict:
    return {table.name: db.session.execute(select(table)).all()
            for table in db.metadata.sorted_tables}


@pytest.fixture
def admin_client(app):
    with app.app_context():
        add_user("root", super_admin=True, enrolled=False)
        alice, _ = add_user("alice")
        alice_id = alice.id
    return app, alice_id


@pytest.mark.parametrize("method,path,csrf_page,fields", FORMS,
                         ids=[f"{m} {p}" for m, p, _, _ in FORMS])
@SETTINGS
@given(data=st.data())
def test_no_5xx_and_nothing_stored_when_refused(admin_client, method, path, csrf_page, fields,
                                                data):
    app, alice_id = admin_client
    client = app.test_client()
    if path not in ANONYMOUS:
        AuthActions(client).login("root")
    form = {field: data.draw(values, label=field) for field in fields
            if data.draw(st.booleans(), label=f"send {field}")}
    path = path.format(user_id=alice_id)
    if method == "POST":
        form["csrf_token"] = csrf_token_from(client.get(csrf_page).get_data(as_text=True))
    with app.app_context():
        before = snapshot()
    if method == "POST":
        response = client.post(path, data=form)
    else:
        response = client.get(path, query_string=form)
    page = response.get_data(as_text=True)
    assert response.status_code < 500, (response.status_code, form)
    assert "Traceback" not in page
    if 400 <= response.status_code < 500 and (path, response.status_code) not in RECORDED:
        with app.app_context():
            assert snapshot() == before, (response.status_code, form)


@SETTINGS
@given(token=values)
def test_reset_links_of_any_shape(app, token):
    client = app.test_client()
    response = client.get("/otp-reset/" + token.replace("/", "x").replace("?", "x")
                          .replace("#", "x") or "x")
    assert response.status_code in (200, 404, 405, 410, 429) or 300 <= response.status_code < 400


@pytest.mark.parametrize("path", ["/login", "/otp-reset", "/settings/email"])
def test_bodies_over_the_limit_get_413(app, path):
    client = app.test_client()
    AuthActions(client).login_admin()
    response = client.post(path, data={"x": "y" * (65 * 1024)})
    assert response.status_code == 413


@SETTINGS
@given(user_id=st.integers(min_value=-2**70, max_value=2**70),
       action=st.one_of(st.sampled_from(["unlock", "deactivate", "reactivate",
                                         "notifications-on", "notifications-off",
                                         "force-reset"]), values))
def test_user_action_paths_of_any_shape(admin_client, user_id, action):
    app, _ = admin_client
    client = app.test_client()
    AuthActions(client).login("root")
    token = csrf_token_from(client.get("/settings/users").get_data(as_text=True))
    action = action.replace("/", "x").replace("?", "x").replace("#", "x") or "x"
    with app.app_context():
        before = snapshot()
    response = client.post(f"/settings/users/{user_id}/{action}", data={"csrf_token": token})
    assert response.status_code in (200, 404, 405, 409) or 300 <= response.status_code < 400
    if response.status_code >= 400:
        with app.app_context():
            assert snapshot() == before
