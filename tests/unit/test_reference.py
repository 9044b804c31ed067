"""Image reference grammar: repository, tag and digest apart, and refusals in docker's words."""

from __future__ import annotations

import pytest

from fleet_agent.reference import ImageRef, parse

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("nginx", ImageRef("nginx", None, None)),
        ("nodered/node-red:latest", ImageRef("nodered/node-red", "latest", None)),
        ("nodered/node-red:3.1.0-18", ImageRef("nodered/node-red", "3.1.0-18", None)),
        ("nginx:Latest", ImageRef("nginx", "Latest", None)),
        ("foo:5000", ImageRef("foo", "5000", None)),
        ("registry:5000/app", ImageRef("registry:5000/app", None, None)),
        ("localhost:5000/foo/bar:1.0", ImageRef("localhost:5000/foo/bar", "1.0", None)),
        ("ghcr.io/org/team/app:v2", ImageRef("ghcr.io/org/team/app", "v2", None)),
        ("Registry.Example.com/app", ImageRef("Registry.Example.com/app", None, None)),
        ("[::1]:5000/app:1", ImageRef("[::1]:5000/app", "1", None)),
        ("a__b/c-d.e_f", ImageRef("a__b/c-d.e_f", None, None)),
        (f"alpine@{DIGEST}", ImageRef("alpine", None, DIGEST)),
        (f"alpine:3.19@{DIGEST}", ImageRef("alpine", "3.19", DIGEST)),
    ],
)
def test_a_valid_reference_is_split_into_repository_tag_and_digest(
    reference: str, expected: ImageRef
) -> None:
    assert parse(reference) == expected


@pytest.mark.parametrize(
    "reference",
    [
        "",
        "node red",
        "foo:",
        ":latest",
        "foo:bar:baz",
        "a___b",
        "a.-b",
        "/foo",
        "foo/",
        "foo@sha256:abc",
    ],
)
def test_a_malformed_reference_is_refused_as_docker_words_it(reference: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid reference format$"):
        parse(reference)


@pytest.mark.parametrize("reference", ["Nginx", "nodered/Node-Red:latest", "ghcr.io/Org/app"])
def test_an_uppercase_repository_path_is_refused_with_the_lowercase_hint(reference: str) -> None:
    with pytest.raises(
        ValueError, match=r"^invalid reference format: repository name must be lowercase$"
    ):
        parse(reference)


def test_an_uppercase_first_component_without_dot_or_port_is_refused_as_the_engine_does() -> None:
    # dockerd 20.10: `docker pull Fleet-test/app:1` -> "repository name must be lowercase"
    with pytest.raises(ValueError, match="must be lowercase"):
        parse("NodeRed/node-red:latest")
    assert parse("Registry.Example/app:1") == ImageRef("Registry.Example/app", "1", None)


def test_a_repository_name_longer_than_255_characters_is_refused() -> None:
    parse("a" * 255)
    with pytest.raises(ValueError, match="must not be more than 255 characters"):
        parse("a" * 256)


def test_a_tag_longer_than_128_characters_is_refused() -> None:
    parse("foo:" + "t" * 128)
    with pytest.raises(ValueError, match=r"^invalid reference format$"):
        parse("foo:" + "t" * 129)


@pytest.mark.parametrize(
    ("reference", "floating"),
    [
        ("nginx", True),
        ("nginx:latest", True),
        ("nginx:1.25", False),
        ("nginx:Latest", False),
        (f"nginx@{DIGEST}", False),
        (f"nginx:latest@{DIGEST}", False),
    ],
)
def test_only_latest_or_no_tag_without_a_digest_is_floating(reference: str, floating: bool) -> None:
    assert parse(reference).floating is floating


@pytest.mark.parametrize(
    ("reference", "pull_tag"),
    [
        ("nginx", "latest"),
        ("nginx:1.25", "1.25"),
        (f"nginx@{DIGEST}", DIGEST),
        (f"nginx:1.25@{DIGEST}", DIGEST),
    ],
)
def test_a_pull_asks_for_the_digest_else_the_tag_else_latest(reference: str, pull_tag: str) -> None:
    assert parse(reference).pull_tag == pull_tag


# --- registries, lowercase and digest lengths --------------------------------------------------

HEX64 = "0123456789abcdef" * 4


def test_an_uppercase_first_component_that_is_not_a_registry_is_refused_as_not_lowercase() -> None:
    with pytest.raises(
        ValueError, match=r"^invalid reference format: repository name must be lowercase$"
    ):
        parse("Fleet-test/app:1")


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("localhost/app", ImageRef("localhost/app", None, None)),
        ("localhost:5000/app:1", ImageRef("localhost:5000/app", "1", None)),
        (
            f"my.registry:5000/a/b@sha256:{HEX64}",
            ImageRef("my.registry:5000/a/b", None, f"sha256:{HEX64}"),
        ),
        (
            f"my.registry:5000/a/b:2.1@sha256:{HEX64}",
            ImageRef("my.registry:5000/a/b", "2.1", f"sha256:{HEX64}"),
        ),
        ("foo:5000/bar", ImageRef("foo:5000/bar", None, None)),
        ("foo/bar:5000", ImageRef("foo/bar", "5000", None)),
    ],
)
def test_a_registry_is_a_first_component_with_a_dot_a_port_or_localhost(
    reference: str, expected: ImageRef
) -> None:
    assert parse(reference) == expected


@pytest.mark.parametrize(
    ("digest", "algorithm"),
    [
        ("sha256:" + "a" * 32, "sha256"),
        ("sha256:" + "a" * 63, "sha256"),
        ("sha256:" + "a" * 65, "sha256"),
        ("sha512:" + "a" * 64, "sha512"),
        ("sha384:" + "a" * 64, "sha384"),
    ],
)
def test_a_digest_of_the_wrong_length_for_its_algorithm_is_refused(
    digest: str, algorithm: str
) -> None:
    with pytest.raises(
        ValueError,
        match=rf"^invalid reference format: invalid checksum digest length \({algorithm}\)$",
    ):
        parse(f"alpine@{digest}")


@pytest.mark.parametrize(
    "digest", ["sha256:" + "a" * 64, "sha384:" + "b" * 96, "sha512:" + "c" * 128]
)
def test_a_digest_of_the_right_length_for_its_algorithm_is_accepted(digest: str) -> None:
    assert parse(f"alpine@{digest}") == ImageRef("alpine", None, digest)


def test_an_uppercase_hex_sha256_digest_is_refused_as_the_engine_refuses_it() -> None:
    # The engine's go-digest accepts only lowercase hex (`^[a-f0-9]{64}$`, "invalid checksum
    # digest format"): refuse such a target with 400 at the door, not at pull time.
    with pytest.raises(ValueError, match=r"^invalid reference format"):
        parse("alpine@sha256:" + HEX64.upper())
