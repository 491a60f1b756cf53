"""Credentials at rest: Fernet tokens of JSON dicts, with keys that can be rotated.

Keys come from ``OPENLINE_SECRETS_KEYS`` (comma-separated, newest first) or, in development,
from ``OPENLINE_SECRETS_KEY_FILE`` (one key per line, newest first), generated once. The
newest key encrypts; every listed key decrypts, so a rotation never makes a stored token
unreadable while it runs. Production never generates a key: it fails loudly instead, because
a key silently created on one host would leave the credentials unreadable on every other.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretsError(Exception):
    """Stored credentials cannot be read with the configured keys (never includes the token)."""


_lock = threading.Lock()
# (where the keys came from, file stamp) -> MultiFernet; re-read when the key file changes, so
# a rotation done by ``secrets_rotate`` is picked up by running processes.
_cached: tuple[tuple, MultiFernet] | None = None


def _parse(lines: str) -> list[bytes]:
    keys = [part.strip() for part in lines.replace(",", "\n").splitlines() if part.strip()]
    for key in keys:
        try:
            Fernet(key)
        except ValueError:
            raise ImproperlyConfigured(
                "A secrets key is not a valid Fernet key (32 url-safe base64-encoded bytes); "
                "make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            ) from None
    return [key.encode() for key in keys]


def key_file() -> Path:
    """Return the path of the development key file."""
    return Path(settings.OPENLINE_SECRETS_KEY_FILE)


def keys_from_environment() -> bool:
    """Say whether the keys are configured in the environment (not in the key file)."""
    return bool(str(getattr(settings, "OPENLINE_SECRETS_KEYS", "") or "").strip())


def _write_new_file(path: Path, content: str) -> bool:
    """Create ``path`` with ``content`` unless it exists; return whether this call created it.

    The content is written to a private temporary file first and then hard-linked into
    place: ``link`` fails if the name exists (like O_EXCL), and a reader never sees a
    half-written file, so two processes starting at once end up using the same key.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".fernet-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def replace_key_file(keys: list[bytes]) -> None:
    """Atomically replace the key file with ``keys`` (newest first), mode 0600."""
    path = key_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".fernet-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write("".join(key.decode() + "\n" for key in keys))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _file_keys(*, create: bool) -> tuple[tuple, list[bytes]]:
    path = key_file()
    if not path.exists():
        if not create:
            raise ImproperlyConfigured(
                "Messenger credentials cannot be encrypted: production mode needs "
                "OPENLINE_SECRETS_KEYS (comma-separated Fernet keys, newest first) or an "
                f"existing key file at OPENLINE_SECRETS_KEY_FILE ({path}); none is configured."
            )
        _write_new_file(path, Fernet.generate_key().decode() + "\n")
    # Re-read whatever is there now: the file this process wrote, or the one that won.
    stat = path.stat()
    keys = _parse(path.read_text(encoding="ascii"))
    if not keys:
        raise ImproperlyConfigured(f"The secrets key file {path} holds no key.")
    return ("file", str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino), keys


def _fernet() -> MultiFernet:
    global _cached
    configured = str(getattr(settings, "OPENLINE_SECRETS_KEYS", "") or "").strip()
    if configured:
        stamp: tuple = ("env", configured)
        keys = None
    else:
        production = bool(getattr(getattr(settings, "CONFIG", None), "production", False))
        stamp, keys = _file_keys(create=not production)
    with _lock:
        if _cached is not None and _cached[0] == stamp:
            return _cached[1]
        if keys is None:
            keys = _parse(configured)
            if not keys:
                raise ImproperlyConfigured("OPENLINE_SECRETS_KEYS holds no key.")
        fernet = MultiFernet([Fernet(key) for key in keys])
        _cached = (stamp, fernet)
        return fernet


def current_keys() -> list[bytes]:
    """Return the configured keys, newest first (creating the development key if needed)."""
    _fernet()
    configured = str(getattr(settings, "OPENLINE_SECRETS_KEYS", "") or "").strip()
    if configured:
        return _parse(configured)
    return _parse(key_file().read_text(encoding="ascii"))


def encrypt_json(data: dict) -> str:
    """Encrypt a dict of credentials into one Fernet token (with the newest key)."""
    payload = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return _fernet().encrypt(payload).decode("ascii")


def decrypt_json(token: str) -> dict:
    """Decrypt a token made by ``encrypt_json``; an empty token is an empty dict."""
    if not token:
        return {}
    try:
        payload = _fernet().decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError):
        raise SecretsError(
            "Stored credentials cannot be decrypted with the configured keys: the key that "
            "encrypted them is missing from OPENLINE_SECRETS_KEYS / the key file."
        ) from None
    data = json.loads(payload)
    if not isinstance(data, dict):
        raise SecretsError("Stored credentials are not a JSON object.")
    return data


def rotate_token(token: str) -> str:
    """Re-encrypt a token with the newest key (any configured key may have made it)."""
    if not token:
        return token
    try:
        return _fernet().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeEncodeError):
        raise SecretsError(
            "Stored credentials cannot be decrypted with the configured keys, so they cannot "
            "be re-encrypted."
        ) from None


# The name spec9 gives the rotation helper.
rotate = rotate_token


def forget_cached_keys() -> None:
    """Drop the cached keys (tests, and after the key file was replaced in this process)."""
    global _cached
    with _lock:
        _cached = None


# Other holders of encrypted secrets (webhook endpoints' signing secrets) register how to
# re-encrypt theirs with the newest key, so ``secrets_rotate`` rotates every one of them
# without importing the apps that own them.
_rotators: list[tuple[str, Callable[[], int]]] = []


def register_rotator(label: str, rotate: Callable[[], int]) -> None:
    """Add ``rotate`` (returns how many secrets it re-encrypted) under ``label`` (once)."""
    if all(existing is not rotate for _, existing in _rotators):
        _rotators.append((label, rotate))


def rotators() -> list[tuple[str, Callable[[], int]]]:
    """Return the registered re-encryptions, in registration order."""
    return list(_rotators)
