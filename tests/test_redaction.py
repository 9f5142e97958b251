from __future__ import annotations

import pytest

from bootstrap.kernel.redaction import MASK, Redactor, looks_secret


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


def test_presigned_url_signatures_are_masked() -> None:
    """A presigned URL grants access to its object until it expires: its signature (SigV4
    and SigV2) and session token are secrets; the rest of the URL stays readable."""
    redactor = Redactor({})
    v4 = ("GET http://127.0.0.1:9000/b/k.wav?X-Amz-Algorithm=AWS4-HMAC-SHA256"
          "&X-Amz-Expires=600&X-Amz-SignedHeaders=host&X-Amz-Signature=ab12cd34ef"
          "&X-Amz-Security-Token=FQoGZXIvYXdz failed")
    assert redactor.text(v4) == (
        "GET http://127.0.0.1:9000/b/k.wav?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Expires=600&X-Amz-SignedHeaders=host&X-Amz-Signature={MASK}"
        f"&X-Amz-Security-Token={MASK} failed")
    v2 = "https://h/b/k?AWSAccessKeyId=AKIA&Signature=6if2G4lN%2B4tA&Expires=1795875717"
    assert redactor.text(v2) == f"https://h/b/k?AWSAccessKeyId=AKIA&Signature={MASK}&Expires=1795875717"


def test_the_bucket_secret_is_a_secret() -> None:
    assert looks_secret("BUCKET_SECRET_ACCESS_KEY") and looks_secret("BUCKET_ACCESS_KEY_ID")
