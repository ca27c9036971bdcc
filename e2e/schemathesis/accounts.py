"""Accounts on the live server under test, made as a user or an operator
would: signup with the emailed code, `sesame admin create`, login.

SESAME_URL and MAILBOX_URL come from e2e/lib/with-stack.mjs, with SESAME_BIN
and SESAME_DATABASE_URL for the command line.
"""

import base64
import itertools
import json
import os
import re
import subprocess
import urllib.parse
from dataclasses import dataclass

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


def pending_email_change(account: Account, token: str) -> tuple[str, str]:
    """Asks to move `account` to a new address: (the address, its code)."""
    new_email = fresh_email("moved")
    body = {"password": account.password, "newEmail": new_email}
    expect(call("POST", "/users/me/email", body, token), 202, "email change request")
    return new_email, code_in(mail_to(new_email, 1))
