"""Who is calling: API-key and JWT bearer verification for the model servers (pure: no web framework).

A server holds one :class:`Authenticator` built from :class:`creditops.config.AuthConfig` by
:func:`authenticator_from_config`; for every protected request it calls ``authenticate(headers)`` and
records the returned :class:`Identity` (the audit log's ``caller_id`` is ``identity.subject``, never a header
the caller chose). Anonymous serving is a mode that must be named in the config (``mode: anonymous``).

* ``api_key``: the caller sends ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; the server knows only
  the keys' SHA-256 digests (``caller id -> sha256 hex``), so the config and the repository never hold a key.
* ``jwt``: ``Authorization: Bearer <token>`` verified with the configured key (HMAC secret or public key, read
  from a file such as a mounted Kubernetes secret), algorithms, and optionally audience and issuer; ``exp`` is
  required; the subject is the ``sub`` claim.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = [
    "ANONYMOUS",
    "ApiKeyAuthenticator",
    "AuthError",
    "Authenticator",
    "Identity",
    "JwtAuthenticator",
    "AnonymousAuthenticator",
    "authenticator_from_config",
    "hash_api_key",
    "read_api_key_hashes",
]

MAX_SUBJECT = 256


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified caller: ``subject`` (the audit ``caller_id``) and how it was verified."""

    subject: str
    method: str


ANONYMOUS = Identity("anonymous", "anonymous")


class AuthError(Exception):
    """The request carries no valid credentials (HTTP 401); ``message`` says what is wrong, never a secret."""

    status = 401


class Authenticator(Protocol):
    """Turns request headers (lower-case names) into an :class:`Identity`, or raises :class:`AuthError`."""

    method: str

    def authenticate(self, headers: Mapping[str, str]) -> Identity:
        """Verify the request's credentials."""
        ...


def hash_api_key(key: str) -> str:
    """SHA-256 hex digest of an API key (what the server's key list stores)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Authorization header must be 'Bearer <credential>'")
    return token.strip()


class AnonymousAuthenticator:
    """Every caller is ``anonymous`` (an explicit config choice, for local use)."""

    method = "anonymous"

    def authenticate(self, headers: Mapping[str, str]) -> Identity:
        """Always :data:`ANONYMOUS`."""
        return ANONYMOUS


class ApiKeyAuthenticator:
    """API keys checked against their SHA-256 digests.

    Args:
        key_hashes: caller id -> sha256 hex of that caller's key.
    """

    method = "api_key"

    def __init__(self, key_hashes: Mapping[str, str]):
        if not key_hashes:
            raise ValueError("api_key authentication needs at least one key hash")
        for caller, digest in key_hashes.items():
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
                raise ValueError(f"API key hash of caller {caller!r} is not a sha256 hex digest")
        self._callers = [(digest.lower().encode(), caller) for caller, digest in key_hashes.items()]

    def authenticate(self, headers: Mapping[str, str]) -> Identity:
        """The caller whose key digest matches (constant-time comparison over every known key)."""
        key = headers.get("x-api-key") or _bearer(headers)
        if not key:
            raise AuthError("missing credentials: send 'Authorization: Bearer <api key>' or 'X-API-Key'")
        digest = hash_api_key(key).encode()
        found = None
        for known, caller in self._callers:
            if hmac.compare_digest(known, digest):
                found = caller
        if found is None:
            raise AuthError("invalid API key")
        return Identity(found[:MAX_SUBJECT], self.method)


class JwtAuthenticator:
    """JWT bearer tokens verified by signature, expiry and (when given) audience and issuer.

    Args:
        key: HMAC secret or PEM public key.
        algorithms: accepted signature algorithms (never ``none``).
        audience: required ``aud`` claim, if any.
        issuer: required ``iss`` claim, if any.
        leeway_s: clock skew tolerated on ``exp``/``nbf``.
    """

    method = "jwt"

    def __init__(
        self,
        key: str,
        algorithms: Sequence[str] = ("RS256",),
        audience: str | None = None,
        issuer: str | None = None,
        leeway_s: float = 30.0,
    ):
        if not key:
            raise ValueError("jwt authentication needs a verification key")
        if not algorithms or any(a.lower() == "none" for a in algorithms):
            raise ValueError("jwt authentication needs signature algorithms (and never 'none')")
        self.key = key
        self.algorithms = list(algorithms)
        self.audience = audience
        self.issuer = issuer
        self.leeway_s = leeway_s

    def authenticate(self, headers: Mapping[str, str]) -> Identity:
        """The token's ``sub`` once signature, ``exp`` and the configured claims verify."""
        import jwt

        token = _bearer(headers)
        if not token:
            raise AuthError("missing credentials: send 'Authorization: Bearer <JWT>'")
        required = ["exp", "sub"] + (["aud"] if self.audience else []) + (["iss"] if self.issuer else [])
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": required},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise AuthError("invalid token: 'sub' must be a non-empty string")
        return Identity(subject[:MAX_SUBJECT], self.method)


def read_api_key_hashes(path: str | Path) -> dict[str, str]:
    """Read ``<caller id> <sha256 hex>`` lines (``#`` comments and blank lines skipped).

    Raises:
        ValueError: a line is not two fields.
    """
    out: dict[str, str] = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{path}:{n}: expected '<caller id> <sha256 hex of the key>'")
        out[parts[0]] = parts[1]
    return out


def authenticator_from_config(
    mode: str,
    *,
    api_key_hashes_file: str | Path | None = None,
    jwt_key_file: str | Path | None = None,
    jwt_algorithms: Sequence[str] = ("RS256",),
    jwt_audience: str | None = None,
    jwt_issuer: str | None = None,
) -> Authenticator:
    """Build the authenticator a server runs with (the fields of :class:`creditops.config.AuthConfig`).

    Raises:
        ValueError: the mode is unknown or its key material is missing or malformed.
    """
    if mode == "anonymous":
        return AnonymousAuthenticator()
    if mode == "api_key":
        if not api_key_hashes_file:
            raise ValueError("auth mode api_key needs api_key_hashes_file")
        return ApiKeyAuthenticator(read_api_key_hashes(api_key_hashes_file))
    if mode == "jwt":
        if not jwt_key_file:
            raise ValueError("auth mode jwt needs jwt_key_file")
        key = Path(jwt_key_file).read_text().strip()
        return JwtAuthenticator(key, jwt_algorithms, jwt_audience, jwt_issuer)
    raise ValueError(f"unknown auth mode {mode!r} (anonymous, api_key or jwt)")
