"""A real OpenID Connect provider for the sign-in tests: oidc-provider-mock (discovery, JWKS, the code flow, refresh
tokens, userinfo, end-session), made stricter about PKCE, as Okta, Entra ID and Keycloak can be configured to be: an
authorization request must carry an S256 code_challenge, and the token request the verifier that matches it.

    python -m tests.sso.idp PORT
"""

import os
import sys

import uvicorn
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge
from oidc_provider_mock import _app

_challenges: dict[str, tuple[str, str]] = {}


class RequirePkce(CodeChallenge):
    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE is required: code_challenge with code_challenge_method=S256")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant, result):
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'")
        super().validate_code_verifier(grant, result)

    def get_authorization_code_challenge(self, authorization_code):
        return _challenges.get(authorization_code.code, ("", ""))[0]

    def get_authorization_code_challenge_method(self, authorization_code):
        return _challenges.get(authorization_code.code, ("", ""))[1]


class PkceCodeGrant(_app.AuthorizationCodeGrant):
    def __init__(self, request, server):
        super().__init__(request, server)
        RequirePkce()(self)

    def save_authorization_code(self, code, request):
        super().save_authorization_code(code, request)
        data = request.payload.data
        _challenges[code] = (data.get("code_challenge"), data.get("code_challenge_method"))


_app.AuthorizationCodeGrant = PkceCodeGrant  # the blueprint's setup registers whatever this name holds

if __name__ == "__main__":
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # plain http on loopback
    app = _app.app(require_nonce=True)
    uvicorn.run(app, interface="wsgi", host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
