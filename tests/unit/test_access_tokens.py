"""Access tokens: every forgery a client could try is refused."""

from __future__ import annotations

import base64
import json
import pickle
import time

import jwt
import pytest
from pydantic import SecretStr

from accounts.errors import ScopeNotAllowed, TokenInvalid
from accounts.settings import AuthSettings
from accounts.tokens import AccessTokenCodec

KEY = "k" * 64


def codec(secret: str = KEY, **overrides: object) -> AccessTokenCodec:
    return AccessTokenCodec(AuthSettings(jwt_secret=SecretStr(secret), **overrides))  # type: ignore[arg-type]


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_fresh_token_verifies_to_its_user() -> None:
    tokens = codec()
    claims = tokens.verify(tokens.issue(user_id="u1", token_epoch=3))
    assert (claims.user_id, claims.token_epoch) == ("u1", 3)


def test_alg_none_is_refused() -> None:
    tokens = codec()
    good = jwt.decode(
        tokens.issue(user_id="u1", token_epoch=0), options={"verify_signature": False}
    )
    forged = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(good)}."
    with pytest.raises(TokenInvalid):
        tokens.verify(forged)


def test_a_tampered_payload_is_refused() -> None:
    tokens = codec()
    header, _payload, signature = tokens.issue(user_id="u1", token_epoch=0).split(".")
    claims = jwt.decode(
        tokens.issue(user_id="u1", token_epoch=0), options={"verify_signature": False}
    )
    claims["sub"] = "admin"
    with pytest.raises(TokenInvalid):
        tokens.verify(f"{header}.{b64(claims)}.{signature}")


def test_a_token_signed_with_another_key_is_refused() -> None:
    with pytest.raises(TokenInvalid):
        codec().verify(codec("x" * 64).issue(user_id="u1", token_epoch=0))


def test_a_token_of_another_deployment_is_refused() -> None:
    other = codec(jwt_issuer="someone-else")
    with pytest.raises(TokenInvalid):
        codec().verify(other.issue(user_id="u1", token_epoch=0))


def test_an_expired_token_is_refused_with_a_clear_reason() -> None:
    tokens = codec(access_token_ttl_s=60)
    old = tokens.issue(user_id="u1", token_epoch=0, now=time.time() - 3600)
    with pytest.raises(TokenInvalid, match="expired"):
        tokens.verify(old)


def test_an_hs256_token_with_the_public_algorithm_confusion_is_refused() -> None:
    forged = jwt.encode({"sub": "u1"}, KEY, algorithm="HS512")
    with pytest.raises(TokenInvalid):
        codec().verify(forged)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "vcr_notajwt", "e30.e30.e30"])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(TokenInvalid):
        codec().verify(garbage)


@pytest.mark.parametrize(
    "error", [TokenInvalid("nope"), ScopeNotAllowed(["root"])], ids=["token", "scope"]
)
def test_errors_survive_pickling(error: Exception) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
