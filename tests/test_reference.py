"""Reference grammar and normalization (spec §6.1) and scope strings (spec §5.7)."""

from __future__ import annotations

import pytest

from mfkit.core.reference import (
    is_loopback,
    is_valid_digest,
    is_valid_tag,
    parse_reference,
    parse_repository,
    repository_scope,
    scope,
    split_host,
    validate_tag,
)
from mfkit.errors import UsageError

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "normalized", "api_host", "path", "ref"),
    [
        ("nginx", "docker.io/library/nginx:latest", "registry-1.docker.io", "library/nginx", "latest"),
        ("nginx:1.9", "docker.io/library/nginx:1.9", "registry-1.docker.io", "library/nginx", "1.9"),
        ("docker.io/nginx", "docker.io/library/nginx:latest", "registry-1.docker.io", "library/nginx", "latest"),
        ("index.docker.io/library/ubuntu:22.04", "docker.io/library/ubuntu:22.04", "registry-1.docker.io",
         "library/ubuntu", "22.04"),
        ("samalba/my-app", "docker.io/samalba/my-app:latest", "registry-1.docker.io", "samalba/my-app", "latest"),
        ("registry-1.docker.io/nginx", "registry-1.docker.io/nginx:latest", "registry-1.docker.io", "nginx",
         "latest"),
        ("registry.example.test/k8s/nginx:1.9", "registry.example.test/k8s/nginx:1.9", "registry.example.test",
         "k8s/nginx", "1.9"),
        ("localhost:5000/foo", "localhost:5000/foo:latest", "localhost:5000", "foo", "latest"),
        ("localhost/foo", "localhost/foo:latest", "localhost", "foo", "latest"),
        ("127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000", "a/b/c", "t"),
        ("[::1]:5000/foo:bar", "[::1]:5000/foo:bar", "[::1]:5000", "foo", "bar"),
        ("[2001:db8::1]/foo", "[2001:db8::1]/foo:latest", "[2001:db8::1]", "foo", "latest"),
        (f"nginx@{D}", f"docker.io/library/nginx@{D}", "registry-1.docker.io", "library/nginx", D),
        (f"host.test/a:tag@{D}", f"host.test/a:tag@{D}", "host.test", "a", D),
        ("Example.COM/foo", "Example.COM/foo:latest", "Example.COM", "foo", "latest"),
        ("a__b/c.d-e--f:_x.-", "docker.io/a__b/c.d-e--f:_x.-", "registry-1.docker.io", "a__b/c.d-e--f", "_x.-"),
    ],
)
def test_normalization(text: str, normalized: str, api_host: str, path: str, ref: str) -> None:
    r = parse_reference(text)
    assert str(r) == normalized
    assert r.api_host == api_host
    assert r.path == path
    assert r.ref == ref
    assert r.input == text


def test_default_tag_is_flagged() -> None:
    assert parse_reference("nginx").tag_defaulted
    assert not parse_reference("nginx:latest").tag_defaulted
    assert parse_reference(f"nginx@{D}").tag is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "UPPER/Case",  # an upper-case first component is a domain; the path must still be lower-case
        "docker.io/Nginx",
        "nginx:",
        "nginx:.bad",
        "nginx:-bad",
        "nginx:" + "a" * 129,
        "nginx@sha256:abc",
        "nginx@sha256:" + "A" * 64,
        "nginx@sha256:" + "a" * 63,
        "https://registry.example.test/foo",
        "foo bar",
        "host.test/",
        "host.test:99999/foo",
        "host.test:/foo",
        "[::1/foo",
        "[not-v6]:5000/foo",
        "-bad.host/foo",
        "a" * 64,
        "foo//bar",
        "foo/-bar",
        "foo/bar_",
        "foo/" + "a" * 256,
    ],
)
def test_rejected(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_reference(text)
    assert info.value.exit_code == 2
    assert "invalid reference" in info.value.message


def test_tag_rules() -> None:
    assert is_valid_tag("latest") and is_valid_tag("_") and is_valid_tag("a" * 128)
    assert is_valid_tag("x..y_Z-") and is_valid_tag("_..")
    assert not is_valid_tag("") and not is_valid_tag(".x") and not is_valid_tag("a" * 129)
    assert not is_valid_tag("a/b") and not is_valid_tag("a:b") and not is_valid_tag("ä")
    assert validate_tag("v1") == "v1"
    with pytest.raises(UsageError, match="invalid tag"):
        validate_tag("../x")


def test_digest_rules() -> None:
    assert is_valid_digest(D)
    assert is_valid_digest("sha512:" + "0" * 128)
    assert is_valid_digest("multihash+base58:" + "0" * 32)
    assert not is_valid_digest("sha256:" + "0" * 65)
    assert not is_valid_digest("sha256:" + "g" * 64)
    assert not is_valid_digest("0sha:" + "0" * 64)


def test_with_tag_and_digest() -> None:
    r = parse_repository("127.0.0.1:5000/k8s/nginx")
    assert str(r.with_tag("1.9")) == "127.0.0.1:5000/k8s/nginx:1.9"
    assert str(r.with_digest(D)) == f"127.0.0.1:5000/k8s/nginx@{D}"
    with pytest.raises(UsageError):
        r.with_tag("bad tag")


def test_parse_repository_refuses_tags() -> None:
    with pytest.raises(UsageError, match="--all-tags"):
        parse_repository("nginx:1.9")
    with pytest.raises(UsageError, match="--all-tags"):
        parse_repository(f"nginx@{D}")
    assert parse_repository("nginx").tag is None


def test_scopes() -> None:
    assert repository_scope("k8s/nginx") == "repository:k8s/nginx:pull"
    assert repository_scope("k8s/nginx", "pull", "push") == "repository:k8s/nginx:pull,push"
    assert scope("registry", "catalog", ["*"]) == "registry:catalog:*"


def test_hosts() -> None:
    assert split_host("[::1]:5000") == ("::1", 5000)
    assert split_host("example.test") == ("example.test", None)
    assert split_host("example.test:443") == ("example.test", 443)
    for host in ("localhost", "localhost:5000", "127.0.0.1", "127.1.2.3:80", "[::1]:5000", "foo.localhost"):
        assert is_loopback(host), host
    for host in ("example.test", "10.0.0.1", "[2001:db8::1]", "localhost.example.test"):
        assert not is_loopback(host), host
