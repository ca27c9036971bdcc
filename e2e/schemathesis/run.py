"""Runs schemathesis over every operation of a live sesame (started by
e2e/lib/with-stack.mjs): makes a user and an admin, then hands over to
`schemathesis run` with schemathesis.toml and hooks.py beside this file.

    python e2e/schemathesis/run.py [extra schemathesis options]
"""

import os
import sys
import time
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here))

import accounts  # noqa: E402


def main() -> None:
    started = time.monotonic()
    user = accounts.active_user("user")
    admin = accounts.admin("admin")
    env = {
        **os.environ,
        "ST_USER_TOKEN": accounts.login(user.email, user.password).access_token,
        "ST_USER_ID": user.user_id,
        "ST_ADMIN_TOKEN": accounts.login(admin.email, admin.password).access_token,
        "SCHEMATHESIS_HOOKS": "hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(here), os.environ.get("PYTHONPATH")])),
    }
    print(f"schemathesis: a user and an admin ready in {time.monotonic() - started:.1f} s", flush=True)
    schemathesis = Path(sys.executable).parent / "schemathesis"
    command = [
        str(schemathesis),
        "--config-file",
        str(here / "schemathesis.toml"),
        "run",
        f"{accounts.BASE_URL}/openapi.json",
        # Two passkey operations need a passkey an authenticator made (one
        # to register, one to delete); these hooks make none (no software
        # authenticator in Python yet), so every positive case would be
        # refused and fail the run as missing test data. Their flows run for
        # real in tests/api/passkeys.rs (a software authenticator) and
        # e2e/browser/passkeys.test.mjs (Chromium's virtual authenticator).
        "--exclude-path",
        "/users/me/passkeys/register/finish",
        "--exclude-path",
        "/users/me/passkeys/{passkeyId}",
        *sys.argv[1:],
    ]
    os.execve(command[0], command, env)


if __name__ == "__main__":
    main()
