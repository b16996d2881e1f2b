"""Several instance keys in APPWRITE_JWT_SECRET (a rotation): how they are read and used."""

from __future__ import annotations

import time

import jwt
import pytest
from appwrite_token_exchange.appwrite.claims import ClaimsError, SignatureMismatch, read_claims
from appwrite_token_exchange.settings import Settings, SettingsError

BASE = {"APPWRITE_ENDPOINT": "https://appwrite.example.com/v1", "APPWRITE_PROJECT_ID": "p1"}
OLD = "old-instance-key-0123456789abcdefgh"
NEW = "new-instance-key-0123456789abcdefgh"
CLAIMS = {"userId": "u", "sessionId": "s", "exp": int(time.time()) + 600}


@pytest.mark.parametrize(
    ("value", "secrets"),
    [
        (None, ()),
        ("", ()),
        (NEW, (NEW,)),
        (f"{NEW},{OLD}", (NEW, OLD)),
        (f" {NEW} , {OLD} ,", (NEW, OLD)),  # spaces and an empty entry (an unset second key) are skipped
        (f"{NEW},{NEW}", (NEW,)),
    ],
)
def test_the_variable_is_a_comma_separated_list(value: str | None, secrets: tuple[str, ...]) -> None:
    env = {**BASE, "APPWRITE_JWT_SECRET": value} if value is not None else BASE
    assert Settings.from_env(env).appwrite_jwt_secrets == secrets


def test_a_list_of_nothing_names_the_variable() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({**BASE, "APPWRITE_JWT_SECRET": " , ,"})
    assert refused.value.variable == "APPWRITE_JWT_SECRET"


def test_no_key_shows_in_the_settings_repr() -> None:
    text = repr(Settings.from_env({**BASE, "APPWRITE_JWT_SECRET": f"{NEW},{OLD}"}))
    assert NEW not in text and OLD not in text


@pytest.mark.parametrize("signer", [OLD, NEW])
def test_a_token_signed_with_any_listed_key_verifies(signer: str) -> None:
    assert read_claims(jwt.encode(CLAIMS, signer), (NEW, OLD)).user_id == "u"


def test_a_token_no_listed_key_verifies_is_a_signature_mismatch() -> None:
    with pytest.raises(SignatureMismatch) as refused:
        read_claims(jwt.encode(CLAIMS, "some-other-instance-key-0123456789ab"), (NEW, OLD))
    assert NEW not in str(refused.value) and OLD not in str(refused.value)


def test_a_malformed_token_is_no_signature_mismatch() -> None:
    # Only a well-formed HS256 token whose signature fails points at our key; anything else is
    # Appwrite's answer being unusable.
    for token in ("not-a-token", jwt.encode(CLAIMS, None, algorithm="none")):
        with pytest.raises(ClaimsError) as refused:
            read_claims(token, (NEW,))
        assert not isinstance(refused.value, SignatureMismatch)


def test_one_key_given_as_a_string_is_one_key() -> None:
    assert read_claims(jwt.encode(CLAIMS, NEW), NEW).user_id == "u"
    assert read_claims(jwt.encode(CLAIMS, NEW), None).user_id == "u"
