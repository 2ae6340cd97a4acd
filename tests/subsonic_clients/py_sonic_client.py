"""Drives py-sonic (module libsonic) against a Subsonic server at BASE_URL PORT.

    python3 py_sonic_client.py ok|wrong BASE_URL PORT USER SECRET FORMS

FORMS is a comma-separated list of `clear` (p=enc:…) and `token` (t + s).
ok:    ping in each form as py-sonic sends it (a form-encoded POST), each once with a
       spoofed Remote-User header; every ping must succeed.
wrong: the same with SECRET as a wrong password; py-sonic must raise the error of
       Subsonic code 40 (CredentialError).
Prints one line per request; exits non-zero on the first unexpected answer.
"""

import sys

import libsonic
from libsonic.errors import CredentialError


def connection(base, port, user, secret, legacy, spoof):
    headers = {"Remote-User": "mallory"} if spoof else {}
    return libsonic.Connection(
        base,
        user,
        secret,
        port=port,
        appName="py-sonic-e2e",
        legacyAuth=legacy,
        customHeaders=headers,
    )


def main():
    mode, base, port, user, secret, forms = sys.argv[1:7]
    port = int(port)
    for form in forms.split(","):
        if form not in ("clear", "token"):
            sys.exit(f"unknown form {form}")
        legacy = form == "clear"
        for spoof in (False, True):
            conn = connection(base, port, user, secret, legacy, spoof)
            if mode == "ok":
                if conn.ping() is not True:
                    sys.exit(f"py-sonic {form}: ping did not succeed")
                print(f"py-sonic {form} ping ok")
            elif mode == "wrong":
                try:
                    conn.ping()
                except CredentialError as e:
                    print(f"py-sonic {form} refused with code 40: {e}")
                    continue
                sys.exit(f"py-sonic {form}: a wrong password was not refused with code 40")
            else:
                sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
