"""Pure auth parsers: WWW-Authenticate (spec §5.2), token answers (§5.4), grants (§5.5)."""

from __future__ import annotations

import base64
import json

import pytest

from mfkit.core.auth import (
    decode_grant,
    empty_grant_error,
    missing_actions,
    parse_token_response,
    parse_www_authenticate,
    redact_headers,
    redact_token_body,
)
from mfkit.errors import AuthError

# The token of the seed transcript (Harbor 2018); its signature part is irrelevant here.
SEED_TOKEN = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIsImtpZCI6IkhJRkQ6UE9WRDpPUDdHOjRUSU46RUVOVzpCNlVQOlFTUFU6R0JGUDpIV0NK"
    "OlFCRzQ6RFhEQzo3TTdSIn0.eyJpc3MiOiJoYXJib3ItdG9rZW4taXNzdWVyIiwic3ViIjoiYWRtaW4iLCJhdWQiOiJoYXJib3ItcmVn"
    "aXN0cnkiLCJleHAiOjE1MzU5NzAxMTQsIm5iZiI6MTUzNTk2ODMxNCwiaWF0IjoxNTM1OTY4MzE0LCJqdGkiOiJRbjc4RG1aZXJ3S1Rp"
    "NXowIiwiYWNjZXNzIjpbeyJ0eXBlIjoicmVwb3NpdG9yeSIsIm5hbWUiOiJrOHMvbmdpbngiLCJhY3Rpb25zIjpbInB1c2giLCIqIiwi"
    "cHVsbCJdfV19.c2ln"
)


def _jwt(header: dict, claims: dict) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc(header)}.{enc(claims)}.c2ln"


# --- WWW-Authenticate ---


def test_docker_hub_challenge() -> None:
    [ch] = parse_www_authenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                                  'scope="repository:samalba/my-app:pull,push"')
    assert ch.scheme == "bearer"
    assert ch.realm == "https://auth.docker.io/token"
    assert ch.service == "registry.docker.io"
    assert ch.scopes == ["repository:samalba/my-app:pull,push"]
    assert ch.error is None


def test_harbor_challenges() -> None:
    [ch] = parse_www_authenticate('Bearer realm="http://registry.example.test/service/token",'
                                  'service="harbor-registry",scope="repository:k8s/nginx:pull",error="invalid_token"')
    assert ch.service == "harbor-registry" and ch.error == "invalid_token"
    [basic] = parse_www_authenticate('Basic realm="harbor"')
    assert basic.scheme == "basic" and basic.realm == "harbor"


def test_case_and_spacing() -> None:
    [ch] = parse_www_authenticate('  BEARER   Realm = "https://a.test/t" , SERVICE=svc,Scope="x:y:pull" ')
    assert ch.scheme == "bearer"
    assert ch.params == {"realm": "https://a.test/t", "service": "svc", "scope": "x:y:pull"}


def test_quoted_values_with_commas_and_escapes() -> None:
    [ch] = parse_www_authenticate(r'Bearer realm="https://a.test/t?x=1,2",error_description="say \"hi\", \\ ok"')
    assert ch.realm == "https://a.test/t?x=1,2"
    assert ch.params["error_description"] == 'say "hi", \\ ok'


def test_several_challenges_in_one_line() -> None:
    chs = parse_www_authenticate('Basic realm="Registry Realm", Bearer realm="https://a.test/t",service="s"')
    assert [c.scheme for c in chs] == ["basic", "bearer"]
    assert chs[0].realm == "Registry Realm"
    assert chs[1].service == "s"


def test_several_header_lines() -> None:
    chs = parse_www_authenticate(['Basic realm="harbor"', 'Bearer realm="https://a.test/t"'])
    assert [c.scheme for c in chs] == ["basic", "bearer"]
    assert chs[1].service is None  # missing service: not sent later


def test_scopes_split_on_spaces() -> None:
    [ch] = parse_www_authenticate('Bearer realm="r",scope="repository:a:pull repository:b:pull,push"')
    assert ch.scopes == ["repository:a:pull", "repository:b:pull,push"]


def test_malformed_stops_parsing() -> None:
    [ch] = parse_www_authenticate('Bearer realm="https://a.test/t",service="unterminated')
    assert ch.realm == "https://a.test/t" and ch.service is None
    assert parse_www_authenticate("") == []
    [bare] = parse_www_authenticate("Negotiate")
    assert bare.scheme == "negotiate" and bare.params == {}


# --- token answers ---


def test_harbor_token_answer() -> None:
    body = json.dumps({"token": SEED_TOKEN, "expires_in": 1800, "issued_at": "2018-09-03T09:51:54Z"}).encode()
    now = 1535968314.0
    t = parse_token_response(body, now=now)
    assert t.token == SEED_TOKEN
    assert t.expires_in == 1800
    assert t.issued_at == "2018-09-03T09:51:54Z"
    assert t.expires_at == pytest.approx(now + 1800)
    assert SEED_TOKEN not in repr(t)


def test_access_token_only_default_and_floor() -> None:
    t = parse_token_response(b'{"access_token": "abc"}', now=1000.0)
    assert t.token == "abc" and t.expires_in == 60 and t.expires_at == 1060.0
    t = parse_token_response(b'{"token": "abc", "expires_in": 5}', now=1000.0)
    assert t.expires_in == 60
    t = parse_token_response(b'{"token": "a", "access_token": "b", "refresh_token": "r"}', now=0.0)
    assert t.token == "a" and t.notes and t.has_refresh_token


def test_skewed_issued_at_counts_from_now() -> None:
    t = parse_token_response(b'{"token": "a", "expires_in": 300, "issued_at": "2001-01-01T00:00:00Z"}', now=2e9)
    assert t.expires_at == 2e9 + 300


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"expires_in": 60}', b'{"token": ""}'])
def test_bad_token_answers(body: bytes) -> None:
    with pytest.raises(AuthError):
        parse_token_response(body, now=0.0)


# --- grants ---


def test_decode_seed_grant() -> None:
    g = decode_grant(SEED_TOKEN, scopes=["repository:k8s/nginx:pull"])
    assert g["format"] == "jwt"
    assert g["alg"] == "RS256"
    assert g["key_id"] == "HIFD:POVD:OP7G:4TIN:EENW:B6UP:QSPU:GBFP:HWCJ:QBG4:DXDC:7M7R"
    assert g["issuer"] == "harbor-token-issuer"
    assert g["subject"] == "admin"
    assert g["audience"] == "harbor-registry"
    assert g["expires_at"] == "2018-09-03T10:21:54Z"
    assert g["issued_at"] == "2018-09-03T09:51:54Z"
    assert g["access"] == [{"type": "repository", "name": "k8s/nginx", "actions": ["push", "*", "pull"]}]
    assert g["requested_scopes"] == ["repository:k8s/nginx:pull"]
    assert SEED_TOKEN not in json.dumps(g)
    assert ".c2ln" not in json.dumps(g)
    assert missing_actions(g, "repository:k8s/nginx:pull,delete") == []  # "*" grants all


def test_opaque_token() -> None:
    g = decode_grant("opaque-value")
    assert g["format"] == "opaque"
    assert missing_actions(g, "repository:a:pull") == []
    assert decode_grant("a.b.c")["format"] == "opaque"


def test_empty_grant_detected() -> None:
    g = decode_grant(_jwt({"alg": "RS256"}, {"sub": "", "access": []}))
    assert missing_actions(g, "repository:k8s/nginx:pull") == ["pull"]
    g = decode_grant(_jwt({"alg": "RS256"}, {"access": [{"type": "repository", "name": "other", "actions": ["pull"]}]}))
    assert missing_actions(g, "repository:k8s/nginx:pull") == ["pull"]
    g = decode_grant(_jwt({}, {"access": [{"type": "repository", "name": "127.0.0.1:5000/x", "actions": ["pull"]}]}))
    assert missing_actions(g, "repository:127.0.0.1:5000/x:pull,push") == ["push"]
    err = empty_grant_error("repository:k8s/nginx:pull")
    assert err.message == ("credentials accepted by the token service but no actions granted for "
                           "repository:k8s/nginx:pull — wrong username/password?")
    assert err.exit_code == 3


def test_redaction() -> None:
    body = json.dumps({"token": "T1", "access_token": "T2", "refresh_token": "R", "expires_in": 60}).encode()
    saved, removed = redact_token_body(body)
    assert sorted(removed) == ["access_token", "refresh_token", "token"]
    assert b"T1" not in saved and b"T2" not in saved and b'"R"' not in saved
    assert json.loads(saved) == {"expires_in": 60}
    assert redact_token_body(b"raw secret") == (b"", ["body"])
    pairs, names = redact_headers([("Set-Cookie", "sid=1"), ("Content-Type", "x"), ("authorization", "Bearer z")])
    assert pairs == [["Set-Cookie", "<redacted>"], ["Content-Type", "x"], ["authorization", "<redacted>"]]
    assert names == ["Set-Cookie", "authorization"]
