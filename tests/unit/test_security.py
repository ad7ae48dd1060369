"""Caller verification (creditops.security): API keys by digest, JWTs by signature, expiry and claims."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from creditops.security import (
    ANONYMOUS,
    AnonymousAuthenticator,
    ApiKeyAuthenticator,
    AuthError,
    JwtAuthenticator,
    authenticator_from_config,
    hash_api_key,
    read_api_key_hashes,
)


def test_api_keys_match_by_digest_only() -> None:
    auth = ApiKeyAuthenticator({"app": hash_api_key("k1"), "ops": hash_api_key("k2")})
    assert auth.authenticate({"x-api-key": "k1"}).subject == "app"
    assert auth.authenticate({"authorization": "Bearer k2"}).subject == "ops"
    for headers in ({}, {"x-api-key": "k3"}, {"authorization": "Basic azE="}, {"authorization": "Bearer "}):
        with pytest.raises(AuthError):
            auth.authenticate(headers)


def test_api_key_hashes_must_be_digests(tmp_path) -> None:
    with pytest.raises(ValueError, match="not a sha256"):
        ApiKeyAuthenticator({"app": "plain-text-key"})
    with pytest.raises(ValueError, match="at least one"):
        ApiKeyAuthenticator({})
    f = tmp_path / "keys"
    f.write_text(f"# comment\n\napp {hash_api_key('k')}  # trailing\n")
    assert read_api_key_hashes(f) == {"app": hash_api_key("k")}
    f.write_text("app\n")
    with pytest.raises(ValueError, match=":1: expected"):
        read_api_key_hashes(f)


def _rsa() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


def test_jwt_rs256_verified_by_public_key() -> None:
    private, public = _rsa()
    other_private, _ = _rsa()
    auth = JwtAuthenticator(public, ["RS256"], audience="creditops", issuer="https://idp.example")
    now = int(time.time())
    good = {"sub": "desk-7", "aud": "creditops", "iss": "https://idp.example", "exp": now + 60}

    def bearer(claims: dict, key: bytes = private) -> dict[str, str]:
        return {"authorization": "Bearer " + jwt.encode(claims, key, algorithm="RS256")}

    ident = auth.authenticate(bearer(good))
    assert (ident.subject, ident.method) == ("desk-7", "jwt")
    bad = [
        bearer(good, other_private),  # signed by someone else
        bearer({**good, "exp": now - 120}),  # expired beyond leeway
        bearer({**good, "aud": "other"}),
        bearer({**good, "iss": "https://evil.example"}),
        bearer({k: v for k, v in good.items() if k != "exp"}),  # no expiry
        bearer({k: v for k, v in good.items() if k != "sub"}),  # no subject
        {"authorization": "Bearer " + jwt.encode(good, None, algorithm="none")},
        {"authorization": "Bearer not.a.jwt"},
        {},
    ]
    for headers in bad:
        with pytest.raises(AuthError):
            auth.authenticate(headers)


def test_jwt_refuses_algorithm_confusion() -> None:
    # An HS256 token "signed" with the public key text must not pass an RS256 verifier.
    _, public = _rsa()
    auth = JwtAuthenticator(public, ["RS256"])
    forged = jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, "k" * 32, algorithm="HS256")
    with pytest.raises(AuthError):
        auth.authenticate({"authorization": f"Bearer {forged}"})
    with pytest.raises(ValueError):
        JwtAuthenticator(public, ["none"])


def test_from_config(tmp_path) -> None:
    assert authenticator_from_config("anonymous").authenticate({}) is ANONYMOUS
    assert isinstance(authenticator_from_config("anonymous"), AnonymousAuthenticator)
    with pytest.raises(ValueError, match="api_key_hashes_file"):
        authenticator_from_config("api_key")
    with pytest.raises(ValueError, match="jwt_key_file"):
        authenticator_from_config("jwt")
    with pytest.raises(ValueError, match="unknown auth mode"):
        authenticator_from_config("open")
    (tmp_path / "k").write_text("secret-secret-secret-secret-32by\n")
    auth = authenticator_from_config("jwt", jwt_key_file=tmp_path / "k", jwt_algorithms=["HS256"])
    token = jwt.encode(
        {"sub": "a", "exp": int(time.time()) + 60}, "secret-secret-secret-secret-32by", "HS256"
    )
    assert auth.authenticate({"authorization": f"Bearer {token}"}).subject == "a"
