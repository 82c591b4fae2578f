"""osauth as it is deployed: gunicorn with 4 workers on PostgreSQL and Redis, real mail
workers, and the faults a deployment meets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import (
    ENCRYPTION_KEY,
    PASSWORD,
    POSTGRES_URL,
    REDIS_URL,
    GunicornSite,
    HttpClient,
    SMTPServer,
    add_user,
    configure_email,
    csrf_token_from,
    enable_two_factor,
    free_port,
    redis_available,
    service_missing,
)
from sqlalchemy import func, select

from osauth.extensions import db
from osauth.models import AuditEvent, OutboxMessage, ResetToken, User
from osauth.services import totp
from osauth.services.tokens import issue_reset_token


def run_together(count: int, work) -> list:
    """``work(i)`` in ``count`` threads released at once; their results in order."""
    barrier = threading.Barrier(count, timeout=60)
    results: list = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One gunicorn, 4 workers, PostgreSQL and Redis; tests empty the tables themselves."""
    redis_available()
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    from conftest import migrated_database

    try:
        migrated_database(POSTGRES_URL)
    except RuntimeError as error:
        service_missing(str(error))
    with GunicornSite(tmp_path_factory.mktemp("gunicorn"),
                      OSAUTH_RATELIMIT_STORAGE_URI=REDIS_URL) as site:
        yield site


def test_four_workers_serve(site):
    assert len(site.worker_pids()) == 4


def test_one_code_signs_in_once_across_workers(pg_app, site):
    with pg_app.app_context():
        _, secret = add_user("alice")
        enable_two_factor()
    clients = [HttpClient(site.url, ip=f"198.51.100.{i + 1}") for i in range(32)]
    tokens = [client.csrf_token() for client in clients]
    code = totp.current_code(secret)
    statuses = run_together(32, lambda i: clients[i].sign_in("alice", PASSWORD, code,
                                                              tokens[i])[0])
    assert statuses.count(302) == 1
    # each replay is a failed code, so the account locks after five of them
    assert all(status in (401, 403) for status in statuses if status != 302)


def test_concurrent_wrong_codes_lock_at_the_threshold(pg_app, site):
    with pg_app.app_context():
        _, secret = add_user("bob")
        enable_two_factor()
    right = totp.current_code(secret)
    wrong = f"{(int(right) + 500_000) % 1_000_000:06d}"
    clients = [HttpClient(site.url, ip=f"198.51.101.{i + 1}") for i in range(12)]
    tokens = [client.csrf_token() for client in clients]
    results = run_together(12, lambda i: clients[i].sign_in("bob", PASSWORD, wrong, tokens[i]))
    assert all(status in (401, 403) for status, _ in results)
    assert any("locked" in page for _, page in results)
    with pg_app.app_context():
        events = db.session.execute(select(AuditEvent.id, AuditEvent.kind)
                                    .order_by(AuditEvent.id)).all()
        locks = [event_id for event_id, kind in events if kind == "account.locked"]
        assert len(locks) == 1
        failures_before = [i for i, kind in events if kind == "sign_in.failed" and i < locks[0]]
        assert len(failures_before) == 5  # the threshold, not later
        bob = db.session.scalar(select(User))
        assert bob.locked_until is not None and bob.failed_attempts == 0
    status, page = clients[0].sign_in("bob", PASSWORD, totp.current_code(secret))
    assert status == 403 and "locked" in page


def test_the_per_ip_limit_holds_across_workers(pg_app, site):
    with pg_app.app_context():
        add_user("carol", enrolled=False)
    clients = [HttpClient(site.url, ip="203.0.113.9") for _ in range(15)]
    tokens = [client.csrf_token() for client in clients]
    statuses = run_together(15, lambda i: clients[i].request("/login", {
        "csrf_token": tokens[i], "login_name": "carol", "password": "wrong password",
        "otp": "123456"})[0])
    assert statuses.count(429) == 5  # "10 per minute", counted in Redis by all 4 workers
    assert HttpClient(site.url, ip="203.0.113.10").request("/login")[0] == 200


def test_postgresql_restart_is_survived(pg_app, site):
    if not Path("/usr/bin/pg_ctlcluster").exists() or os.geteuid() != 0:
        service_missing("restarting PostgreSQL needs pg_ctlcluster and root")
    with pg_app.app_context():
        _, secret = add_user("dave")
        enable_two_factor()
    client = HttpClient(site.url, ip="198.51.102.1")
    assert client.sign_in("dave", PASSWORD, totp.current_code(secret))[0] == 302
    version = os.listdir("/etc/postgresql")[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
                   check=True, timeout=120)
    deadline = time.monotonic() + 60
    while subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode != 0:
        assert time.monotonic() < deadline, "PostgreSQL did not come back"
        time.sleep(0.5)
    # every worker's pooled connection died; pre-ping replaces them on the next checkout
    others = [HttpClient(site.url, ip=f"198.51.102.{i + 2}") for i in range(8)]
    statuses = run_together(8, lambda i: others[i].request("/login")[0])
    assert statuses == [200] * 8
    later = time.time() + 30
    status, _ = HttpClient(site.url, ip="198.51.102.20").sign_in(
        "dave", PASSWORD, totp.current_code(secret, now=later))
    assert status == 302


@pytest.fixture
def private_redis():
    """A Redis of the test's own, so stopping it disturbs nothing else."""
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield process, f"redis://127.0.0.1:{port}/0"
    process.kill()
    process.wait(timeout=10)


def test_sign_in_keeps_working_while_redis_is_down(pg_app, tmp_path, private_redis):
    """Chosen: fail open to per-process counting, with a logged warning. The lockout, kept in
    PostgreSQL, still bounds guessing per account across every worker."""
    process, url = private_redis
    with pg_app.app_context():
        _, secret = add_user("erin")
        enable_two_factor()
    with GunicornSite(tmp_path, workers=2, OSAUTH_RATELIMIT_STORAGE_URI=url) as site:
        now = time.time()
        assert HttpClient(site.url).sign_in("erin", PASSWORD,
                                            totp.current_code(secret, now=now))[0] == 302
        process.kill()
        process.wait(timeout=10)
        assert HttpClient(site.url, "198.51.103.2").sign_in(
            "erin", PASSWORD, totp.current_code(secret, now=now + 30))[0] == 302
        client = HttpClient(site.url, "198.51.103.3")
        status, page = client.request("/otp-reset", {"csrf_token": client.csrf_token(
            "/otp-reset"), "login_name": "erin"})
        assert status == 200 and "If an account with that login name exists" in page
        statuses = [client.request("/login", {
            "csrf_token": csrf_token_from(client.request("/login")[1]),
            "login_name": "erin", "password": "x", "otp": "123456"})[0] for _ in range(3)]
        assert statuses == [401, 401, 401]
        log = site.log_text()
    assert "Rate limit storage unreachable - falling back to in-memory storage" in log
    assert "Traceback" not in log


def mail_worker(tmp_path: Path, name: str, **env) -> subprocess.Popen:
    with (tmp_path / f"{name}.log").open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "mail", "deliver",
             "--interval", "0.2"], cwd=GunicornSite.ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "OSAUTH_DATABASE_URL": POSTGRES_URL, "OSAUTH_SECRET_KEY": "k",
                 "OSAUTH_OTP_ENCRYPTION_KEYS": ENCRYPTION_KEY,
                 "OSAUTH_MAIL_RETRY_BASE_SECONDS": "0.3", **env})


def test_mail_queued_while_the_relay_is_down_is_delivered_once(pg_app, site, tmp_path):
    relay = SMTPServer()  # its port, not yet listening
    configure_email(pg_app, relay.port)
    with pg_app.app_context():
        for i in range(10):
            add_user(f"user{i}", enrolled=False)
    workers = [mail_worker(tmp_path, f"worker{n}") for n in range(2)]
    try:
        for i in range(10):
            client = HttpClient(site.url, ip=f"198.51.104.{i + 1}")
            status, _ = client.request("/otp-reset", {
                "csrf_token": client.csrf_token("/otp-reset"), "login_name": f"user{i}"})
            assert status == 200
        deadline = time.monotonic() + 30
        with pg_app.app_context():
            while db.session.scalar(select(func.count(OutboxMessage.id)).where(
                    OutboxMessage.attempts > 0)) == 0:
                assert time.monotonic() < deadline, "the workers never tried the relay"
                db.session.rollback()
                time.sleep(0.2)
        time.sleep(1.0)  # the relay stays down a while
        assert relay.messages == []
        relay.start()
        try:
            messages = relay.wait_for(10, timeout=60)
            time.sleep(1.5)  # a duplicate would arrive in this time
            assert len(messages) == 10
            assert len({m["Message-ID"] for m in messages}) == 10
            assert sorted(m["To"] for m in messages) == sorted(
                f"user{i}@example.org" for i in range(10))
        finally:
            relay.stop()
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=30)
    with pg_app.app_context():
        assert db.session.scalar(select(func.count(OutboxMessage.id)).where(
            OutboxMessage.status != "sent")) == 0


def test_a_worker_killed_mid_request_leaves_nothing_half_written(pg_app, site):
    configure_email(pg_app, 2525)  # queued only
    tokens = []
    with pg_app.app_context():
        for i in range(24):
            user, _ = add_user(f"kill{i}", enrolled=False)
            tokens.append(issue_reset_token(user))
        db.session.commit()
    clients = [HttpClient(site.url, ip=f"198.51.105.{i + 1}") for i in range(24)]
    forms = [client.csrf_token(f"/otp-reset/{token}") for client, token in
             zip(clients, tokens, strict=True)]
    before = site.worker_pids()

    def press(i: int) -> int:
        if i == 0:  # the killer
            time.sleep(0.02)
            for pid in site.worker_pids()[:2]:
                os.kill(pid, signal.SIGKILL)
            return -1
        try:
            return clients[i].request(f"/otp-reset/{tokens[i]}", {"csrf_token": forms[i]})[0]
        except OSError:
            return 0  # the connection died with its worker

    statuses = run_together(24, press)
    print("statuses with two workers killed:", sorted(statuses))
    deadline = time.monotonic() + 30
    while len(site.worker_pids()) < 4 or set(site.worker_pids()) & set(before[:2]):
        assert time.monotonic() < deadline, "gunicorn did not replace the killed workers"
        time.sleep(0.2)
    assert all(status in (-1, 0, 200) for status in statuses), statuses
    with pg_app.app_context():
        for user in db.session.scalars(select(User)):
            token = db.session.scalar(select(ResetToken).where(ResetToken.user_id == user.id))
            mails = db.session.scalar(select(func.count(OutboxMessage.id)).where(
                OutboxMessage.recipient == user.email, OutboxMessage.kind == "new_secret"))
            used = token.used_at is not None
            assert (user.otp_pending_secret is not None) is used, user.login_name
            assert mails == (1 if used else 0), user.login_name
