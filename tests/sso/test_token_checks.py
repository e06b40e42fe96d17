"""What console.oidc checks in an ID token beyond mozilla-django-oidc's signature, expiry and nonce."""

import pytest
from django.core.exceptions import SuspiciousOperation

from console.identity import OidcProvider
from console.oidc import check_issued_for_us

PROVIDER = OidcProvider(name="okta", issuer="https://idp.example.org", client_id="switchyard", client_secret="s")
ENDPOINTS = {"issuer": "https://idp.example.org"}


def test_it_accepts_a_token_issued_by_the_provider_for_this_client():
    check_issued_for_us({"iss": "https://idp.example.org", "aud": "switchyard"}, PROVIDER, ENDPOINTS)
    check_issued_for_us(
        {"iss": "https://idp.example.org/", "aud": ["switchyard", "api"], "azp": "switchyard"}, PROVIDER, ENDPOINTS
    )


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"iss": "https://evil.example.org", "aud": "switchyard"}, "issuer"),
        ({"iss": "https://idp.example.org", "aud": "another-app"}, "not issued for this client"),
        ({"iss": "https://idp.example.org", "aud": ["another-app", "switchyard"], "azp": "another-app"}, "authorized"),
        ({"iss": "https://idp.example.org"}, "not issued for this client"),
    ],
)
def test_it_refuses_a_token_from_another_issuer_or_for_another_client(claims, why):
    with pytest.raises(SuspiciousOperation, match=why):
        check_issued_for_us(claims, PROVIDER, ENDPOINTS)
