"""The registry's Ed25519 signing key: kept outside the database, published as JWKS.

Checkpoints (signed registry heads) and consent receipts are signed with one
Ed25519 key whose private half lives in a file, never in the database: someone
who can rewrite the database still cannot sign a new history. The public keys
are published (``/registry/jwks.json``) so anyone holding an old checkpoint or
a receipt can check it without trusting the server that answers today.

Layout of the key directory (the folder of ``OPENLINE_SIGNING_KEY_FILE``)::

    registry-ed25519.pem        the current private key (PKCS#8 PEM, mode 600)
    retired/<kid>.pub.pem       public keys of rotated-out keys, kept so old
                                checkpoints and receipts stay verifiable

In development the key is generated once on first use; in production the file
must exist (settings refuse to start without ``OPENLINE_SIGNING_KEY_FILE``).
JWS use the fully-specified algorithm name ``Ed25519`` (RFC 9864) and carry the
key's RFC 7638 thumbprint as ``kid``.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey

ALGORITHM = "Ed25519"
_lock = threading.Lock()


class SignatureInvalid(Exception):
    """Raised when a JWS does not verify against any known (or the supplied) public key."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    jwk: OKPKey  # holds the private key


def key_file() -> Path:
    """Return the path of the current private key file."""
    return Path(settings.OPENLINE_SIGNING_KEY_FILE)


def retired_dir() -> Path:
    """Return the folder that keeps the public keys of rotated-out keys."""
    return key_file().parent / "retired"


def _write_private(path: Path, key: Ed25519PrivateKey, *, replace: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # A temporary name of this process only: two processes starting together must not
    # write into one half-finished file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    if replace:
        os.replace(tmp, path)
        return
    # First use: the first process to create the key wins (link fails if it exists), so no
    # process ever signs with a key that another one then overwrites and nobody retired.
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def _load_private() -> OKPKey:
    path = key_file()
    with _lock:
        if not path.exists():
            if getattr(settings, "OPENLINE_ENV", "development") == "production":
                raise RuntimeError(f"the registry signing key {path} does not exist")
            _write_private(path, Ed25519PrivateKey.generate(), replace=False)
    return OKPKey.import_key(path.read_bytes())


@functools.cache
def _current_cached(path: str, mtime: float) -> SigningKey:
    jwk = _load_private()
    return SigningKey(kid=jwk.thumbprint(), jwk=jwk)


def current_key() -> SigningKey:
    """Return the current signing key (generated once in development)."""
    path = key_file()
    if not path.exists():
        _load_private()
    return _current_cached(str(path), path.stat().st_mtime)


def public_keys() -> dict[str, OKPKey]:
    """Return every public key that verifies registry signatures, by kid (current first)."""
    keys: dict[str, OKPKey] = {}
    current = current_key()
    keys[current.kid] = OKPKey.import_key(current.jwk.as_dict(private=False))
    folder = retired_dir()
    if folder.is_dir():
        for item in sorted(folder.glob("*.pub.pem")):
            public = OKPKey.import_key(item.read_bytes())
            keys.setdefault(public.thumbprint(), public)
    return keys


def jwks() -> dict:
    """Return the published JSON Web Key Set (current and retired public keys)."""
    out = []
    for kid, key in public_keys().items():
        entry = key.as_dict(private=False)
        entry.update({"kid": kid, "alg": ALGORITHM, "use": "sig"})
        out.append(entry)
    return {"keys": out}


def canonical_json(value: dict) -> bytes:
    """Serialise a JSON object to the exact bytes that are signed (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def sign_jws(payload: dict | bytes, *, typ: str) -> str:
    """Sign ``payload`` (a dict is canonicalised) as a compact JWS with the current key."""
    key = current_key()
    body = canonical_json(payload) if isinstance(payload, dict) else payload
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": typ}
    return jws.serialize_compact(header, body, key.jwk, algorithms=[ALGORITHM])


def verify_jws(token: str, *, key_set: dict | None = None) -> tuple[dict, bytes]:
    """Verify a compact JWS against our public keys (or a given JWKS); return header and payload."""
    try:
        if key_set is not None:
            keys = KeySet.import_key_set(key_set)  # type: ignore[arg-type]  # checked by joserfc
        else:
            keys = KeySet(list(public_keys().values()))
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise SignatureInvalid(f"not a usable key set: {exc}") from None
    try:
        obj = jws.extract_compact(token.strip().encode())
        header = dict(obj.protected)
        if header.get("alg") != ALGORITHM:
            raise SignatureInvalid(f"unexpected algorithm {header.get('alg')!r}")
        kid = header.get("kid")
        candidates = [k for k in keys.keys if k.thumbprint() == kid] if kid else list(keys.keys)
        if not candidates:
            raise SignatureInvalid(f"no published key has kid {kid!r}")
        for candidate in candidates:
            try:
                verified = jws.deserialize_compact(token.strip(), candidate, algorithms=[ALGORITHM])
                return dict(verified.protected), verified.payload
            except JoseError:
                continue
    except SignatureInvalid:
        raise
    except (JoseError, ValueError, TypeError, AttributeError) as exc:
        raise SignatureInvalid(f"not a valid JWS: {exc}") from None
    raise SignatureInvalid("the signature does not match the published key")


def rotate() -> SigningKey:
    """Retire the current key (its public half is kept) and start signing with a new one."""
    old = current_key()
    folder = retired_dir()
    folder.mkdir(parents=True, exist_ok=True)
    public_pem = OKPKey.import_key(old.jwk.as_dict(private=False)).as_pem(private=False)
    (folder / f"{old.kid}.pub.pem").write_bytes(public_pem)
    _write_private(key_file(), Ed25519PrivateKey.generate())
    _current_cached.cache_clear()
    return current_key()
