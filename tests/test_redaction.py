from __future__ import annotations

import pytest

from bootstrap.redaction import MASK, Redactor, looks_secret


@pytest.mark.parametrize("name", ["HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "RUNPOD_API_KEY",
                                  "DB_PASSWORD", "GOOGLE_CREDENTIALS_JSON", "BASIC_AUTH",
                                  "GITHUB_PAT", "SESSION_COOKIE"])
def test_secret_looking_names(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize("name", ["PATH", "HOME", "RUNPOD_POD_ID", "SSH_AUTH_SOCK",
                                  "GOOGLE_APPLICATION_CREDENTIALS_FILE", "HF_HOME"])
def test_ordinary_names(name: str) -> None:
    assert not looks_secret(name)


def test_values_of_secret_variables_are_masked_everywhere() -> None:
    redactor = Redactor({"HF_TOKEN": "hf_abcdef", "HOME": "/root", "SHORT_KEY": "ab"})
    data = {"msg": "token hf_abcdef used", "nested": [{"x": "hf_abcdef"}, 3], "home": "/root"}
    assert redactor.value(data) == {"msg": f"token {MASK} used", "nested": [{"x": MASK}, 3],
                                    "home": "/root"}
    assert redactor.text("ab") == "ab"  # too short to be a real secret; masking would garble


def test_credentials_in_urls_are_masked() -> None:
    redactor = Redactor({})
    assert (redactor.text("pip install --index-url https://user:pa55@pypi.example/simple x")
            == f"pip install --index-url https://{MASK}@pypi.example/simple x")
    assert redactor.text("https://pypi.org/simple") == "https://pypi.org/simple"


def test_a_secret_inside_a_longer_secret_is_masked_whole() -> None:
    redactor = Redactor({"A_TOKEN": "abcd", "B_TOKEN": "abcdefgh"})
    assert redactor.text("abcdefgh") == MASK
