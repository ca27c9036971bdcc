"""Schemathesis hooks (loaded by run.py): who each request is sent as, and
real values where a schema cannot make them.

Every operation that needs a session is sent with a live token: the user's
(ST_USER_TOKEN), the admin's for /admin (ST_ADMIN_TOKEN), and, for the
operations that end a session, change credentials or delete the account, a
fresh login of an account of their own, made again when one is gone. So a
logout never turns the rest of the run into `401`s.

Random data rarely is a password, a code from an email or a live id, and
a schema cannot say "hard to guess" or "not taken yet", so on every other
positive case such fields get real ones (the case stays valid for its
schema): each operation reaches its success answer, and the checks see
those bodies too. The other cases keep the generated values and meet the
refusals (a boundary value like `aaaaaaaa` is too easy to guess). A rule
JSON Schema cannot state, `confirmPassword` equal to the new password, is
kept in every positive case.

The second factor works the same way: enrolling and confirming run on an
account of their own, turning TOTP off, new recovery codes and the second
step of a login on accounts with TOTP on (`accounts.mfa_user`), whose codes
pyotp computes; such an account is replaced when it has turned TOTP off or
has no code left to give.

schemathesis also reuses ids it saw in responses, so an admin operation
may name the run's own user: such requests go to a managed account
instead, or the admin would delete or disable the user whose token the
rest of the run needs.
"""

import os
from collections import Counter

import accounts
import pyotp
import schemathesis

USER_TOKEN = os.environ["ST_USER_TOKEN"]
USER_ID = os.environ["ST_USER_ID"]
# A file to write one line per request to (phase, mode, operation, answer).
TRACE = os.environ.get("ST_TRACE")
ADMIN_TOKEN = os.environ["ST_ADMIN_TOKEN"]

# Operations sent as an account of their own, logged in afresh for each request.
OWN_ACCOUNT = {
    "GET /users/logout",
    "POST /users/logout",
    "DELETE /users/me",
    "PATCH /users/me/password",
    "POST /users/me/email",
    "PATCH /users/me/email",
    "DELETE /users/me/sessions/{sessionId}",
    "POST /users/me/mfa/totp",
    "PATCH /users/me/mfa/totp",
    "POST /users/me/passkeys/register/start",
    "DELETE /users/me/passkeys/{passkeyId}",
}
# Operations sent as an account with TOTP on, with the session it kept.
MFA_ACCOUNT = {
    "DELETE /users/me/mfa/totp",
    "POST /users/me/mfa/recovery-codes",
}

_turns: Counter = Counter()
_own: dict[str, accounts.Account] = {}
_mfa: dict[str, accounts.MfaAccount] = {}
_login_account: accounts.Account | None = None
_admin_target: accounts.Account | None = None


def label(case) -> str:
    return f"{case.method.upper()} {case.operation.path}"


def is_positive(case) -> bool:
    return case.meta is None or not case.meta.generation.mode.is_negative


def real_turn(case) -> bool:
    """Every other positive case of an operation (the first one included)."""
    if not is_positive(case):
        return False
    _turns[label(case)] += 1
    return _turns[label(case)] % 2 == 1


def own_account(op: str) -> accounts.Account:
    if op not in _own:
        _own[op] = accounts.active_user("own")
    return _own[op]


def mfa_account(op: str) -> accounts.MfaAccount:
    if op not in _mfa or not _mfa[op].can_prove():
        _mfa[op] = accounts.mfa_user("mfa")
    return _mfa[op]


def login_account() -> accounts.Account:
    global _login_account
    if _login_account is None:
        _login_account = accounts.active_user("login")
    return _login_account


def admin_target() -> accounts.Account:
    global _admin_target
    if _admin_target is None:
        _admin_target = accounts.active_user("managed")
    return _admin_target


def signed_in_ids() -> set[str]:
    """The accounts the run signs in with (the admin is left to the server's own rules)."""
    ids = {USER_ID, *(account.user_id for account in [*_own.values(), *_mfa.values()])}
    if _login_account is not None:
        ids.add(_login_account.user_id)
    return ids


def set_body_fields(case, **fields) -> None:
    if isinstance(case.body, dict):
        case.body = {**case.body, **fields}


def needs_session(case) -> bool:
    return bool(case.operation.definition.raw.get("security"))


@schemathesis.hook
def before_call(context, case, **kwargs):
    op = label(case)
    real = real_turn(case)
    if is_positive(case) and isinstance(case.body, dict) and "confirmPassword" in case.body:
        new_password = case.body.get("password", case.body.get("newPassword"))
        if isinstance(new_password, str):
            set_body_fields(case, confirmPassword=new_password)
    token = ADMIN_TOKEN if op.startswith(("GET /admin", "PATCH /admin", "DELETE /admin")) else USER_TOKEN
    if real and op == "POST /users/signup":
        set_body_fields(case, email=accounts.fresh_email("signup"))
    if real and op in ("POST /users/signup", "PATCH /users/reset", "PATCH /users/me/password"):
        new_password = accounts.strong_password()
        field = "password" if op == "POST /users/signup" else "newPassword"
        set_body_fields(case, **{field: new_password, "confirmPassword": new_password})
    if op in OWN_ACCOUNT:
        account = own_account(op)
        session = accounts.login(account.email, account.password)
        token = session.access_token
        if real and op in ("DELETE /users/me", "POST /users/me/email"):
            set_body_fields(case, password=account.password)
        elif real and op == "PATCH /users/me/password":
            set_body_fields(case, currentPassword=account.password)
        elif real and op == "PATCH /users/me/email":
            _new_email, code = accounts.pending_email_change(account, token)
            set_body_fields(case, code=code)
        elif real and op == "DELETE /users/me/sessions/{sessionId}":
            case.path_parameters = {**(case.path_parameters or {}), "sessionId": session.session_id}
        elif real and op in (
            "POST /users/me/mfa/totp",
            "POST /users/me/passkeys/register/start",
            "DELETE /users/me/passkeys/{passkeyId}",
        ):
            set_body_fields(case, password=account.password)
        elif real and op == "PATCH /users/me/mfa/totp":
            secret = accounts.enrol_totp(token, account.password)
            set_body_fields(case, code=pyotp.TOTP(secret).now())
    elif op in MFA_ACCOUNT:
        account = mfa_account(op)
        token = account.access_token
        if real:
            set_body_fields(case, password=account.password, code=account.second_factor_code())
    elif real and op == "POST /users/login/mfa":
        account = mfa_account(op)
        set_body_fields(case, mfaToken=accounts.mfa_token(account), code=account.second_factor_code())
    elif real and op == "POST /users/login":
        account = login_account()
        set_body_fields(case, email=account.email, password=account.password)
    elif real and op == "POST /users/token/refresh":
        account = login_account()
        set_body_fields(case, refreshToken=accounts.login(account.email, account.password).refresh_token)
    elif real and op == "PATCH /users/activate":
        email, code = accounts.signup("activate")
        set_body_fields(case, email=email, code=code)
    elif real and op == "PATCH /users/reset":
        set_body_fields(case, token=accounts.reset_token("reset"))
    elif real and op == "PATCH /users/email/revert":
        set_body_fields(case, token=accounts.revert_token("revert"))
    elif op.startswith(("GET /admin/users/", "PATCH /admin/users/", "DELETE /admin/users/")):
        named = (case.path_parameters or {}).get("userId")
        if real or named in signed_in_ids():
            case.path_parameters = {**(case.path_parameters or {}), "userId": admin_target().user_id}
    if needs_session(case):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


@schemathesis.hook
def after_call(context, case, response):
    """Follows what a successful request changed about the accounts in use."""
    global _admin_target
    op = label(case)
    if TRACE:
        mode = case.meta.generation.mode.value if case.meta else "?"
        phase = case.meta.phase.name.value if case.meta else "?"
        with open(TRACE, "a", encoding="utf-8") as trace:
            trace.write(f"{phase} {mode} {op} {case.path_parameters or ''} -> {response.status_code} {response.text[:200]}\n")
    if response.status_code != 200:
        return
    body = case.body if isinstance(case.body, dict) else {}
    if op in ("DELETE /users/me", "PATCH /users/me/mfa/totp"):
        # Gone, or TOTP is on: a password alone no longer logs it in.
        del _own[op]
    elif op == "DELETE /users/me/mfa/totp":
        del _mfa[op]
    elif op == "POST /users/me/mfa/recovery-codes":
        _mfa[op].recovery_codes = response.json()["recoveryCodes"]
    elif op == "PATCH /users/me/password":
        _own[op].password = body["newPassword"]
    elif op == "PATCH /users/me/email":
        _own[op].email = response.json()["user"]["email"]
    elif op == "DELETE /admin/users/{userId}" and _admin_target is not None:
        if case.path_parameters.get("userId") == _admin_target.user_id:
            _admin_target = None

