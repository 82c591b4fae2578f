from __future__ import annotations

import base64
import threading

import pytest
from conftest import add_user
from cryptography.fernet import Fernet
from sqlalchemy import select, text
from sqlalchemy.orm.attributes import set_committed_value

from osauth.extensions import db
from osauth.models import User
from osauth.services import totp
from osauth.services.secrets import decrypt, encrypt, reencrypt
from osauth.services.settings import set_setting

# RFC 6238 appendix B: the ASCII seeds and the 8-digit codes at each time.
SEEDS = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
VECTORS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize("algorithm,column", [("SHA1", 1), ("SHA256", 2), ("SHA512", 3)])
@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: str(v[0]))
def test_rfc6238_appendix_b(algorithm, column, vector):
    secret = base64.b32encode(SEEDS[algorithm]).decode()
    code = totp.current_code(secret, now=vector[0], algorithm=algorithm, digits=8)
    assert code == vector[column]


def test_new_secret_has_160_random_bits():
    secrets = {totp.new_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(len(base64.b32decode(s)) == 20 for s in secrets)


NOW = 1_700_000_010.0  # 10 s into a 30 s step


@pytest.mark.parametrize("drift,offset,accepted", [
    (1, 0, True), (1, -1, True), (1, 1, True), (1, -2, False), (1, 2, False),
    (0, 0, True), (0, -1, False), (0, 1, False),
    (2, -2, True), (2, 2, True), (2, 3, False),
])
def test_drift_window(app, drift, offset, accepted):
    with app.app_context():
        user, secret = add_user()
        set_setting("authentication.otp_drift_steps", drift)
        code = totp.current_code(secret, now=NOW + offset * 30)
        assert (totp.verify_code(user, code, now=NOW) is not None) is accepted


def test_a_code_is_accepted_once(app):
    with app.app_context():
        user, secret = add_user()
        code = totp.current_code(secret, now=NOW)
        assert totp.verify_code(user, code, now=NOW)
        db.session.commit()
        db.session.refresh(user)
        assert not totp.verify_code(user, code, now=NOW)
        assert not totp.verify_code(user, code, now=NOW + 20)  # next step: still in the window


def test_an_earlier_step_is_refused_after_a_later_one(app):
    with app.app_context():
        user, secret = add_user()
        later = totp.current_code(secret, now=NOW + 30)
        earlier = totp.current_code(secret, now=NOW)
        assert totp.verify_code(user, later, now=NOW)
        db.session.commit()
        db.session.refresh(user)
        assert not totp.verify_code(user, earlier, now=NOW)
        assert user.otp_last_step == int((NOW + 30) // 30)


def test_the_claim_is_conditional_even_with_a_stale_user(app):
    """Two requests that loaded the user before either accepted: the second still loses."""
    with app.app_context():
        user, secret = add_user()
        code = totp.current_code(secret, now=NOW)
        stale_last_step = user.otp_last_step
        assert totp.verify_code(user, code, now=NOW)
        db.session.commit()
        set_committed_value(user, "otp_last_step", stale_last_step)  # another worker's view
        assert not totp.verify_code(user, code, now=NOW)


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦"])
def test_malformed_codes_are_refused(app, code):
    with app.app_context():
        user, _ = add_user()
        assert not totp.verify_code(user, code, now=NOW)


def test_user_without_authenticator_is_refused(app):
    with app.app_context():
        user, _ = add_user(enrolled=False)
        assert not totp.verify_code(user, "123456", now=NOW)


def test_parameters_come_from_the_credential(app):
    with app.app_context():
        user, secret = add_user()
        user.otp_algorithm, user.otp_digits, user.otp_period = "SHA256", 8, 60
        db.session.commit()
        code = totp.current_code(secret, now=NOW, algorithm="SHA256", digits=8, period=60)
        assert len(code) == 8
        assert totp.verify_code(user, code, now=NOW)


def test_secret_is_encrypted_at_rest(app):
    with app.app_context():
        user, secret = add_user()
        stored = db.session.execute(text("SELECT otp_secret FROM users")).scalar_one()
        assert secret not in stored
        assert decrypt(stored) == secret


def test_key_rotation_keeps_old_secrets_readable(app):
    with app.app_context():
        old_token = encrypt("JBSWY3DPEHPK3PXP")
        new_key = Fernet.generate_key().decode()
        app.config["OTP_ENCRYPTION_KEY_LIST"] = [new_key, *app.config["OTP_ENCRYPTION_KEY_LIST"]]
        assert decrypt(old_token) == "JBSWY3DPEHPK3PXP"
        rotated = reencrypt(old_token)
        app.config["OTP_ENCRYPTION_KEY_LIST"] = [new_key]
        assert decrypt(rotated) == "JBSWY3DPEHPK3PXP"
        with pytest.raises(RuntimeError, match="cannot be decrypted"):
            decrypt(old_token)


def test_one_code_submitted_concurrently_is_accepted_once_on_postgresql(pg_app):
    threads_count = 24
    with pg_app.app_context():
        user, secret = add_user()
        user_id = user.id
    code = totp.current_code(secret)
    barrier = threading.Barrier(threads_count, timeout=30)
    results: list[bool] = []
    lock = threading.Lock()

    def submit() -> None:
        with pg_app.app_context():
            candidate = db.session.get(User, user_id)
            barrier.wait()
            accepted = totp.verify_code(candidate, code) is not None
            db.session.commit()
            with lock:
                results.append(accepted)

    threads = [threading.Thread(target=submit) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == threads_count
    assert results.count(True) == 1
    with pg_app.app_context():
        assert db.session.scalar(select(User.otp_last_step)) is not None
