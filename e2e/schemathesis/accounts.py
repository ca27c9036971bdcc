"""Accounts on the live server under test, made as a user or an operator
would: signup with the emailed code, `sesame admin create`, login, a TOTP
authenticator (its codes computed with pyotp, as the app would).

SESAME_URL and MAILBOX_URL come from e2e/lib/with-stack.mjs, with SESAME_BIN
and SESAME_DATABASE_URL for the command line.
"""

import base64
import itertools
import json
import os
import re
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field

import pyotp
import requests

BASE_URL = os.environ["SESAME_URL"]
MAILBOX_URL = os.environ["MAILBOX_URL"]
TIMEOUT_S = 30
# Strong enough for the policy (zxcvbn score 2), and fixed: a throwaway server.
PASSWORD = "schemathesis correct horse battery"

_numbers = itertools.count(1)
_http = requests.Session()


@dataclass
class Account:
    """Someone who can log in: the address, the password in force, the id."""

    email: str
    password: str
    user_id: str


@dataclass
class Session:
    """A login: its tokens and the session id (the access token's `sid`)."""

    access_token: str
    refresh_token: str
    session_id: str


def fresh_email(label: str) -> str:
    return f"st-{label}-{os.getpid()}-{next(_numbers)}@example.com"


def strong_password() -> str:
    """A password the policy takes, different each time."""
    return f"{PASSWORD} {next(_numbers)}"


def call(method: str, path: str, body: dict | None = None, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return _http.request(method, BASE_URL + path, json=body, headers=headers, timeout=TIMEOUT_S)


def expect(response: requests.Response, status: int, what: str) -> dict:
    if response.status_code != status:
        raise RuntimeError(f"{what}: expected {status}, got {response.status_code}: {response.text[:300]}")
    return response.json()


def mail_to(address: str, nth: int) -> dict:
    """The nth (1-based) email to `address`, waiting for it to arrive."""
    query = urllib.parse.urlencode({"to": address, "min": nth})
    response = requests.get(f"{MAILBOX_URL}/messages?{query}", timeout=TIMEOUT_S + 5)
    messages = response.json()
    if len(messages) < nth:
        raise RuntimeError(f"expected {nth} email(s) to {address}, got {len(messages)}")
    return messages[nth - 1]


def code_in(message: dict) -> str:
    match = re.search(r"code is:\s*(\d{6})", message["text"])
    if not match:
        raise RuntimeError(f"no code in an email with subject {message['subject']!r}")
    return match.group(1)


def reset_token_in(message: dict) -> str:
    match = re.search(r"reset token:\s*([A-Za-z0-9_-]{43})", message["text"])
    if not match:
        raise RuntimeError(f"no reset link in an email with subject {message['subject']!r}")
    return match.group(1)


def signup(label: str) -> tuple[str, str]:
    """An account that signed up and is not active yet: (email, code)."""
    email = fresh_email(label)
    body = {"email": email, "password": PASSWORD, "confirmPassword": PASSWORD}
    expect(call("POST", "/users/signup", body), 201, "signup")
    return email, code_in(mail_to(email, 1))


def active_user(label: str) -> Account:
    email, code = signup(label)
    expect(call("PATCH", "/users/activate", {"email": email, "code": code}), 200, "activate")
    session = login(email, PASSWORD)
    me = expect(call("GET", "/users/me", token=session.access_token), 200, "me")
    return Account(email=email, password=PASSWORD, user_id=me["user"]["userId"])


def admin(label: str) -> Account:
    """An admin made with `sesame admin create` on the server's database."""
    email = fresh_email(label)
    subprocess.run(
        [os.environ["SESAME_BIN"], "admin", "create", "--email", email, "--password-stdin"],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
        env={
            "PATH": os.environ.get("PATH", ""),
            "SESAME_DATABASE_URL": os.environ["SESAME_DATABASE_URL"],
            "SESAME_ARGON2_MEMORY_KIB": "1024",
            "SESAME_ARGON2_ITERATIONS": "1",
        },
        timeout=TIMEOUT_S,
    )
    session = login(email, PASSWORD)
    me = expect(call("GET", "/users/me", token=session.access_token), 200, "admin me")
    if me["user"]["role"] != "admin":
        raise RuntimeError("sesame admin create made no admin")
    return Account(email=email, password=PASSWORD, user_id=me["user"]["userId"])


def login(email: str, password: str) -> Session:
    tokens = expect(call("POST", "/users/login", {"email": email, "password": password}), 200, "login")
    payload = tokens["accessToken"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return Session(tokens["accessToken"], tokens["refreshToken"], claims["sid"])


def reset_token(label: str) -> str:
    """A live password reset token, from the email a new account asked for."""
    email, _code = signup(label)
    expect(call("PATCH", "/users/forgot", {"email": email}), 200, "forgot")
    return reset_token_in(mail_to(email, 2))


def revert_token(label: str) -> str:
    """A live token that undoes an email change, from the notice to the old address."""
    account = active_user(label)
    token = login(account.email, account.password).access_token
    _new_email, code = pending_email_change(account, token)
    expect(call("PATCH", "/users/me/email", {"code": code}, token), 200, "email change")
    # The verification email first, then the notice (waited for, in order).
    for nth in itertools.count(2):
        match = re.search(r"/revert-email\?token=([A-Za-z0-9_-]+)", mail_to(account.email, nth)["text"])
        if match:
            return match.group(1)
    raise AssertionError("unreachable")


def pending_email_change(account: Account, token: str) -> tuple[str, str]:
    """Asks to move `account` to a new address: (the address, its code)."""
    new_email = fresh_email("moved")
    body = {"password": account.password, "newEmail": new_email}
    expect(call("POST", "/users/me/email", body, token), 202, "email change request")
    return new_email, code_in(mail_to(new_email, 1))


@dataclass
class MfaAccount(Account):
    """An account with TOTP on: a session opened before it was turned on
    (confirming keeps it), the secret, and recovery codes not yet spent."""

    access_token: str = ""
    secret: str = ""
    recovery_codes: list[str] = field(default_factory=list)
    # The last TOTP step presented: the server takes each step once, and only
    # later ones than the last it accepted.
    last_step: int = -1

    def can_prove(self) -> bool:
        return self.next_totp_step() is not None or bool(self.recovery_codes)

    def next_totp_step(self) -> int | None:
        """A step the server takes now (one step of skew) and has not seen."""
        now = int(time.time()) // 30
        step = max(now, self.last_step + 1)
        return step if step <= now + 1 else None

    def second_factor_code(self) -> str:
        """A code the server accepts: TOTP while a fresh step is at hand, else a recovery code."""
        step = self.next_totp_step()
        if step is None:
            return self.recovery_codes.pop()
        self.last_step = step
        return pyotp.TOTP(self.secret).at(step * 30)


def enrol_totp(token: str, password: str) -> str:
    """Starts enrolling an authenticator: its base32 secret."""
    started = expect(call("POST", "/users/me/mfa/totp", {"password": password}, token), 201, "TOTP enrolment")
    return started["secret"]


def mfa_user(label: str) -> MfaAccount:
    """A new active account with TOTP on."""
    account = active_user(label)
    session = login(account.email, account.password)
    secret = enrol_totp(session.access_token, account.password)
    step = int(time.time()) // 30
    body = {"code": pyotp.TOTP(secret).at(step * 30)}
    confirmed = expect(call("PATCH", "/users/me/mfa/totp", body, session.access_token), 200, "TOTP confirmation")
    return MfaAccount(
        email=account.email,
        password=account.password,
        user_id=account.user_id,
        access_token=session.access_token,
        secret=secret,
        recovery_codes=confirmed["recoveryCodes"],
        last_step=step,
    )


def mfa_token(account: MfaAccount) -> str:
    """The first step of a login with TOTP on: the token the second step needs."""
    body = {"email": account.email, "password": account.password}
    return expect(call("POST", "/users/login", body), 403, "login with TOTP on")["mfaToken"]
