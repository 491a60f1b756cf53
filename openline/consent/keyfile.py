"""Check the registry's signing key file before the server starts (no Django needed).

Production never generates a key (signing.py): a missing or broken file would only show
as a 500 on the first receipt or on the published keys, so settings refuse to start.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def key_file_problem(path: str | Path) -> str | None:
    """Return why ``path`` is not a usable Ed25519 private key file, or None when it is."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return f"{path} does not exist"
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror or type(exc).__name__})"
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnicodeError):
        return f"{path} is not a PEM private key without a password"
    if not isinstance(key, Ed25519PrivateKey):
        return f"{path} holds a {type(key).__name__.lstrip('_')}, not an Ed25519 private key"
    return None
