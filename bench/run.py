"""osauth's benchmarks, measured side by side in one run and reported as ratios.

    .venv/bin/python bench/run.py [--quick]

Needs PostgreSQL on 127.0.0.1:5432 (it uses its own database, osauth_bench) and Redis; it
starts gunicorn itself. It prints a Markdown table; bench/README.md keeps the last one.
These machines are noisy: compare ratios within a run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pyotp
import sqlalchemy as sa
from flask_migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import ENCRYPTION_KEY, GunicornSite, HttpClient  # noqa: E402

from osauth import create_app  # noqa: E402
from osauth.extensions import db  # noqa: E402
from osauth.models import User  # noqa: E402
from osauth.services import totp  # noqa: E402
from osauth.services.secrets import encrypt  # noqa: E402
from osauth.services.settings import set_setting  # noqa: E402
from osauth.services.users import hash_password  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/osauth_bench"
PG_BIG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/osauth_bench_big"
REDIS = "redis://127.0.0.1:6379/14"
PASSWORD = "benchmark password"
rows: list[tuple[str, str, str]] = []


def report(name: str, figure: str, note: str = "") -> None:
    rows.append((name, figure, note))
    print(f"{name}: {figure} {note}", flush=True)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def fresh_database(url: str):
    if url.startswith("postgresql"):
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
    app = create_app({"SECRET_KEY": "bench", "DATABASE_URL": url, "TESTING": True,
                      "OTP_ENCRYPTION_KEYS": ENCRYPTION_KEY})
    with app.app_context():
        upgrade()
        set_setting("authentication.two_factor_enabled", True)
        set_setting("authentication.lockout_threshold", 100)
        db.session.commit()
    return app


def add_users(app, prefix: str, count: int, password_hash: str) -> dict[str, str]:
    """``count`` enrolled users sharing one password hash; returns login → secret."""
    secrets = {f"{prefix}{i:06d}": totp.new_secret() for i in range(count)}
    with app.app_context():
        for chunk in range(0, count, 5000):
            names = list(secrets)[chunk:chunk + 5000]
            db.session.execute(sa.insert(User), [{
                "login_name": n, "login_key": n, "email": f"{n}@example.org",
                "first_name": "", "last_name": "", "password_hash": password_hash,
                "is_super_admin": False, "active": True, "email_notifications": True,
                "otp_secret": encrypt(secrets[n]), "otp_algorithm": "SHA1", "otp_digits": 6,
                "otp_period": 30, "failed_attempts": 0, "session_epoch": 0} for n in names])
            db.session.commit()
    return secrets


def sign_in_latencies(url: str, users: dict[str, str], count: int) -> list[float]:
    samples = []
    for i, (login, secret) in enumerate(list(users.items())[:count]):
        client = HttpClient(url, ip=f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}")
        token = client.csrf_token()
        start = time.perf_counter()
        status, _ = client.sign_in(login, PASSWORD, totp.current_code(secret), token)
        samples.append(time.perf_counter() - start)
        assert status == 302, status
    return samples


def get_latencies(url: str, path: str, count: int) -> list[float]:
    client = HttpClient(url)
    client.request(path)
    return [timed(client.request, path) for _ in range(count)]


def rss_mb(pids: list[int]) -> list[float]:
    sizes = []
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return sizes


def bench_code_check(label: str, app, n: int) -> None:
    with app.app_context():
        users = add_users(app, f"check{label}", n, "x")
        people = db.session.scalars(select_users(f"check{label}")).all()
        checks, bare = [], []
        for user in people:
            secret = users[user.login_name]
            code = totp.current_code(secret)
            start = time.perf_counter()
            assert totp.verify_code(user, code) is not None
            db.session.commit()
            checks.append(time.perf_counter() - start)
            bare.append(timed(lambda s=secret, c=code: pyotp.TOTP(s).verify(c, valid_window=1)))
    report(f"code check alone ({label}): decrypt + verify + conditional UPDATE + commit",
           f"{median_ms(checks):.2f} ms median",
           f"target < 2 ms; {median_ms(checks) / median_ms(bare):.0f} x pyotp's bare verify "
           f"({median_ms(bare) * 1000:.0f} µs)")


def select_users(prefix: str):
    return sa.select(User).where(User.login_key.like(f"{prefix}%")).order_by(User.id)


def throughput(folder: Path, workers: int, users: dict[str, str], seconds: float):
    """Sign-ins per second from 8 concurrent clients for ``seconds``."""
    with GunicornSite(folder, workers=workers, OSAUTH_DATABASE_URL=PG_URL,
                      OSAUTH_RATELIMIT_STORAGE_URI=REDIS, OSAUTH_ACCESS_LOG="") as site:
        names = iter(list(users.items()))
        lock = threading.Lock()
        done = []
        deadline = time.monotonic() + seconds

        def client_loop(k: int) -> None:
            while time.monotonic() < deadline:
                with lock:
                    login, secret = next(names)
                client = HttpClient(site.url, ip=f"10.9.{k}.{len(done) % 250}")
                status, _ = client.sign_in(login, PASSWORD, totp.current_code(secret))
                assert status == 302, status
                with lock:
                    done.append(time.monotonic())

        threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(8)]
        start = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rate = len(done) / (time.monotonic() - start)
        return rate, rss_mb(site.worker_pids())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    quick = parser.parse_args().quick
    n = 15 if quick else 60
    folder = Path(tempfile.mkdtemp(prefix="osauth-bench-"))
    import redis

    redis.Redis.from_url(REDIS).flushdb()
    app = fresh_database(PG_URL)
    with app.app_context():
        real_hash = hash_password(PASSWORD)  # the configured cost: scrypt n=32768, r=8, p=1
    from werkzeug.security import check_password_hash

    hash_samples = [timed(check_password_hash, real_hash, PASSWORD) for _ in range(n)]
    hash_ms = median_ms(hash_samples)
    users = add_users(app, "user", 1000, real_hash)
    env = {"OSAUTH_DATABASE_URL": PG_URL, "OSAUTH_RATELIMIT_STORAGE_URI": REDIS,
           "OSAUTH_ACCESS_LOG": "", "OSAUTH_LOGIN_RATE_LIMIT": "100000 per minute",
           "OSAUTH_OTP_RESET_RATE_LIMIT_PER_IP": "100000 per hour"}

    with GunicornSite(folder, workers=1, app="bench.floor_app:app", **env) as floor_site:
        floor_ms = median_ms(get_latencies(floor_site.url, "/", n * 3))
    with GunicornSite(folder, workers=1, **env) as site:
        sign_in_1k = median_ms(sign_in_latencies(site.url, users, n))
        # reset requests, known and unknown names interleaved (distinct names: 5/hour each)
        known, unknown = [], []
        client = HttpClient(site.url, ip="10.200.0.1")
        token = client.csrf_token("/otp-reset")
        names = list(users)
        for i in range(n * 2):
            for name, bucket in ((names[500 + i], known), (f"nobody{i:06d}", unknown)):
                start = time.perf_counter()
                status, _ = client.request("/otp-reset", {"csrf_token": token,
                                                          "login_name": name})
                bucket.append(time.perf_counter() - start)
                assert status == 200
    report("floor: bare Flask endpoint, same gunicorn settings, 1 worker",
           f"{floor_ms:.2f} ms median")
    report("one password hash (scrypt n=32768 r=8 p=1)", f"{hash_ms:.1f} ms median")
    ratio = sign_in_1k / (floor_ms + hash_ms)
    report("full sign-in request (password + code), 1,000 users",
           f"{sign_in_1k:.1f} ms median",
           f"= {ratio:.2f} x (floor + one hash); target ≤ 1.2")
    reset_ratio = median_ms(known) / median_ms(unknown)
    report("reset request, known vs unknown login name",
           f"{median_ms(known):.2f} / {median_ms(unknown):.2f} ms median",
           f"ratio {reset_ratio:.2f}; target 0.9–1.1")

    bench_code_check("PostgreSQL", app, n)
    sqlite_app = fresh_database(f"sqlite:///{folder / 'bench.sqlite'}")
    bench_code_check("SQLite", sqlite_app, n)

    # Growth, side by side: a second database with 100,000 users, sign-ins alternating
    # between a site on each, so both see the same machine noise.
    big = fresh_database(PG_BIG_URL)
    big_users = add_users(big, "user", 1000, real_hash)
    add_users(big, "more", 99_000, real_hash)
    for url in (PG_URL, PG_BIG_URL):
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
    small_samples, big_samples = [], []
    big_env = {**env, "OSAUTH_DATABASE_URL": PG_BIG_URL}
    with GunicornSite(folder, workers=1, **env) as small_site, \
            GunicornSite(folder, workers=1, **big_env) as big_site:
        small_pool = list(users.items())[100:]
        big_pool = list(big_users.items())
        for i in range(n):
            small_samples += sign_in_latencies(small_site.url, dict(small_pool[i:i + 1]), 1)
            big_samples += sign_in_latencies(big_site.url, dict(big_pool[i:i + 1]), 1)
    growth = median_ms(big_samples) / median_ms(small_samples)
    report("growth: sign-in with 100,000 vs 1,000 users (alternating)",
           f"{median_ms(big_samples):.1f} vs {median_ms(small_samples):.1f} ms median",
           f"ratio {growth:.2f}; target < 1.1")

    more = add_users(app, "tput", 3000, real_hash)
    seconds = 4 if quick else 10
    rates = {}
    pool = iter([dict(list(more.items())[i * 1000:(i + 1) * 1000]) for i in range(3)])
    for workers in (1, 2, 4):
        rate, memory = throughput(folder, workers, next(pool), seconds)
        rates[workers] = rate
        report(f"throughput, {workers} worker{'s' if workers > 1 else ''}, 8 clients",
               f"{rate:.1f} sign-ins/s",
               f"{rate / rates[1]:.2f} x 1 worker; resident memory per worker "
               f"{statistics.median(memory):.0f} MB")
    print()
    print("| measurement | figure | ratio / note |")
    print("|---|---|---|")
    for name, figure, note in rows:
        print(f"| {name} | {figure} | {note} |")
    print(f"\n(os.cpu_count() = {os.cpu_count()})")


if __name__ == "__main__":
    main()
