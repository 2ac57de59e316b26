"""The PHI guard: credentialed records (MIMIC) never leave this machine unless the user says so, loudly.

PhysioNet's data use agreement for MIMIC forbids sending its text to third-party services (including LLM APIs).
Every judge or endpoint that would receive record text calls `check_destination` first; a destination counts as
local only if its host is a loopback address (127.0.0.0/8, ::1) or `localhost`. Host names are not resolved: a name
that happens to point at this machine is still treated as remote, which errs on the side of the agreement.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlparse

from heal.errors import HealError

OVERRIDE_FLAG = "--allow_credentialed_data_to_remote_endpoint"


def is_loopback(url: str | None) -> bool:
    """True for http(s)://localhost…, 127.x.x.x and [::1]; False for anything else, including no URL at all
    (an SDK's default endpoint is a third-party service)."""
    if not url:
        return False
    host = urlparse(url if "://" in url else f"http://{url}").hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_destination(credentialed: bool, url: str | None, allow_remote: bool, what: str = "judge") -> None:
    """Raise before anything is sent if credentialed data would go to a non-loopback `url`."""
    if not credentialed or is_loopback(url):
        return
    if allow_remote:
        import warnings

        warnings.warn(f"sending credentialed (MIMIC) records to {url or 'the default API endpoint'} because "
                      f"{OVERRIDE_FLAG} was given; make sure your data use agreement allows it", stacklevel=2)
        return
    raise HealError(
        f"refusing to send credentialed records (source: mimic) to the {what} at {url or 'the default API endpoint'}: "
        "the PhysioNet data use agreement forbids sharing MIMIC text with third parties. Use a local judge (hf:<path>, "
        f"or an OpenAI-compatible server on localhost), or pass {OVERRIDE_FLAG} if you are certain it is allowed")
