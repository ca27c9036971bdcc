"""The whole flow through a Python client generated from the committed
openapi.json by openapi-python-client, against a live server.

scripts/test generates the client into target/e2e/generated/python and puts
it on PYTHONPATH; SESAME_URL and MAILBOX_URL come from e2e/lib/with-stack.mjs.
"""

import base64
import json
import os
import re
import time
import urllib.parse
import urllib.request
from http import HTTPStatus

import pyotp
from sesame_client import AuthenticatedClient, Client
from sesame_client.api.auth import activate, login, login_mfa, refresh_token, signup
from sesame_client.api.me import get_me, list_referred, logout
from sesame_client.api.mfa import confirm_totp_enrolment, start_totp_enrolment
from sesame_client.models import (
    ActivateBody,
    ApiError,
    ErrorCode,
    LoginBody,
    LoginMfaBody,
    LogoutBody,
    MeResponse,
    RecoveryCodesResponse,
    ReferredResponse,
    RefreshBody,
    SignupBody,
    SignupCreated,
    TokenResponse,
    TotpCodeBody,
    TotpEnrolment,
    TotpEnrolmentBody,
)

BASE_URL = os.environ["SESAME_URL"]
MAILBOX_URL = os.environ["MAILBOX_URL"]
PASSWORD = "correct horse battery staple"
TIMEOUT_S = 30


def code_from_email(address: str, nth: int) -> str:
    """The 6-digit code in the nth email to `address`, as the user reads it."""
    query = urllib.parse.urlencode({"to": address, "min": nth})
    with urllib.request.urlopen(f"{MAILBOX_URL}/messages?{query}", timeout=TIMEOUT_S + 5) as res:
        messages = json.load(res)
    assert len(messages) >= nth, f"expected {nth} email(s) to {address}, got {len(messages)}"
    match = re.search(r"verification code is:\s*(\d{6})", messages[nth - 1]["text"])
    assert match, messages[nth - 1]["text"]
    return match.group(1)


def new_account(client: Client, email: str, referrer: str | None = None) -> SignupCreated:
    body = SignupBody(email=email, password=PASSWORD, confirm_password=PASSWORD)
    if referrer is not None:
        body.referrer = referrer
    answer = signup.sync_detailed(client=client, body=body)
    assert answer.status_code == HTTPStatus.CREATED, answer.content
    assert isinstance(answer.parsed, SignupCreated)
    return answer.parsed


def test_signup_activate_login_me_referred_refresh_logout() -> None:
    stamp = time.time_ns()
    email = f"py-{stamp}@example.com"
    client = Client(base_url=BASE_URL, timeout=TIMEOUT_S, raise_on_unexpected_status=True)

    account = new_account(client, email)

    code = code_from_email(email, 1)
    activated = activate.sync(client=client, body=ActivateBody(email=email, code=code))
    assert activated is not None and activated.message == "Account activated."

    refused = login.sync(client=client, body=LoginBody(email=email, password="not the password"))
    assert isinstance(refused, ApiError)
    assert refused.code == ErrorCode.INVALID_CREDENTIALS

    tokens = login.sync(client=client, body=LoginBody(email=email, password=PASSWORD))
    assert isinstance(tokens, TokenResponse)
    assert tokens.token_type == "Bearer"
    authed = AuthenticatedClient(base_url=BASE_URL, token=tokens.access_token, timeout=TIMEOUT_S)

    me = get_me.sync(client=authed)
    assert isinstance(me, MeResponse)
    assert me.user.user_id == account.user_id
    assert me.user.email == email
    assert me.user.active is True

    new_account(client, f"py-friend-{stamp}@example.com", referrer=account.referral_code)
    referred = list_referred.sync(client=authed, limit=10)
    assert isinstance(referred, ReferredResponse)
    assert referred.total == 1
    assert referred.accounts[0].email == "p***@example.com"
    assert referred.accounts[0].active is False

    renewed = refresh_token.sync(client=client, body=RefreshBody(refresh_token=tokens.refresh_token))
    assert isinstance(renewed, TokenResponse)
    assert renewed.refresh_token != tokens.refresh_token
    authed = AuthenticatedClient(base_url=BASE_URL, token=renewed.access_token, timeout=TIMEOUT_S)
    assert isinstance(get_me.sync(client=authed), MeResponse)

    bye = logout.sync_detailed(client=authed, body=LogoutBody(all_=False))
    assert bye.status_code == HTTPStatus.OK, bye.content

    after = get_me.sync(client=authed)
    assert isinstance(after, ApiError)
    assert after.code == ErrorCode.UNAUTHORIZED


def test_logout_without_a_body_ends_the_session() -> None:
    """The generated client sends `Content-Type: application/json` with an
    empty body when the optional body is left out; that must work too."""
    email = f"py-nobody-{time.time_ns()}@example.com"
    client = Client(base_url=BASE_URL, timeout=TIMEOUT_S)
    new_account(client, email)
    activate.sync(client=client, body=ActivateBody(email=email, code=code_from_email(email, 1)))
    tokens = login.sync(client=client, body=LoginBody(email=email, password=PASSWORD))
    assert isinstance(tokens, TokenResponse)
    authed = AuthenticatedClient(base_url=BASE_URL, token=tokens.access_token, timeout=TIMEOUT_S)

    bye = logout.sync_detailed(client=authed)
    assert bye.status_code == HTTPStatus.OK, bye.content
    assert get_me.sync_detailed(client=authed).status_code == HTTPStatus.UNAUTHORIZED


def amr(access_token: str) -> list[str]:
    """The `amr` claim of a JWT (not verified: the server did that)."""
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["amr"]


def mfa_required(client: Client, email: str) -> ApiError:
    """The answer to the right password once TOTP is on."""
    answer = login.sync_detailed(client=client, body=LoginBody(email=email, password=PASSWORD))
    assert answer.status_code == HTTPStatus.FORBIDDEN, answer.content
    assert isinstance(answer.parsed, ApiError)
    assert answer.parsed.code == ErrorCode.MFA_REQUIRED
    return answer.parsed


def test_totp_enrol_confirm_login_replay_and_recovery_code() -> None:
    email = f"py-mfa-{time.time_ns()}@example.com"
    client = Client(base_url=BASE_URL, timeout=TIMEOUT_S)
    new_account(client, email)
    activate.sync(client=client, body=ActivateBody(email=email, code=code_from_email(email, 1)))
    tokens = login.sync(client=client, body=LoginBody(email=email, password=PASSWORD))
    assert isinstance(tokens, TokenResponse)
    assert amr(tokens.access_token) == ["pwd"]
    authed = AuthenticatedClient(base_url=BASE_URL, token=tokens.access_token, timeout=TIMEOUT_S)

    enrolment = start_totp_enrolment.sync_detailed(client=authed, body=TotpEnrolmentBody(password=PASSWORD))
    assert enrolment.status_code == HTTPStatus.CREATED, enrolment.content
    assert isinstance(enrolment.parsed, TotpEnrolment)
    # What an authenticator app does: read the QR code's URI.
    app = pyotp.parse_uri(enrolment.parsed.otpauth_uri)
    assert isinstance(app, pyotp.TOTP)
    assert app.secret == enrolment.parsed.secret
    assert (app.digits, app.interval, app.name) == (6, 30, email)

    # A code is accepted once per account, and only for a later step than
    # the last one accepted. Confirming spends the step the app shows now;
    # the login below uses the next step's code, which the server accepts
    # (one step of skew) whether or not a step boundary passes in between.
    now = int(time.time())
    confirm_step = now // app.interval
    confirmed = confirm_totp_enrolment.sync(client=authed, body=TotpCodeBody(code=app.at(now)))
    assert isinstance(confirmed, RecoveryCodesResponse), confirmed
    recovery_codes = confirmed.recovery_codes
    assert len(set(recovery_codes)) == 10

    me = get_me.sync(client=authed)
    assert isinstance(me, MeResponse)
    assert (me.user.mfa.totp, me.user.mfa.recovery_codes_left, me.user.mfa.passkeys) == (True, 10, 0)

    challenge = mfa_required(client, email)
    assert isinstance(challenge.mfa_token, str)
    assert isinstance(challenge.methods, list) and sorted(challenge.methods) == ["recovery", "totp"]
    next_step_code = app.at((confirm_step + 1) * app.interval)
    with_totp = login_mfa.sync(
        client=client, body=LoginMfaBody(mfa_token=challenge.mfa_token, code=next_step_code)
    )
    assert isinstance(with_totp, TokenResponse), with_totp
    assert sorted(amr(with_totp.access_token)) == ["mfa", "otp", "pwd"]

    # Second login: the same code again is a replay; a recovery code
    # finishes the same step.
    second = mfa_required(client, email)
    assert isinstance(second.mfa_token, str)
    replay = login_mfa.sync_detailed(
        client=client, body=LoginMfaBody(mfa_token=second.mfa_token, code=next_step_code)
    )
    assert replay.status_code == HTTPStatus.BAD_REQUEST, replay.content
    assert isinstance(replay.parsed, ApiError) and replay.parsed.code == ErrorCode.INVALID_CODE
    recovered = login_mfa.sync(
        client=client, body=LoginMfaBody(mfa_token=second.mfa_token, code=recovery_codes[0])
    )
    assert isinstance(recovered, TokenResponse), recovered
    assert sorted(amr(recovered.access_token)) == ["mfa", "pwd"]

    renewed = AuthenticatedClient(base_url=BASE_URL, token=recovered.access_token, timeout=TIMEOUT_S)
    after = get_me.sync(client=renewed)
    assert isinstance(after, MeResponse)
    assert (after.user.mfa.totp, after.user.mfa.recovery_codes_left) == (True, 9)
