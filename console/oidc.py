"""OpenID Connect sign-in through mozilla-django-oidc, for any number of providers (ADR 0047).

mozilla-django-oidc reads one provider's endpoints from settings; here each view and the backend take them from the
provider the URL names (/oidc/<name>/authenticate/, /oidc/<name>/callback/), and the endpoints from the provider's
discovery document (`<issuer>/.well-known/openid-configuration`, cached for an hour). The library does the
authorization-code flow with PKCE (S256), state and nonce kept in the session (so any web process can take the
callback), and the ID token's signature check against the provider's JWKS; this module adds what it leaves out: the
token's `iss` and `aud`, userinfo's `sub` against the token's, which provider a state was issued for (a callback at
another provider's URL is refused), the role from the claim, and the refresh token revalidation uses.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import requests
from django.conf import settings
from django.contrib import auth
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.views.decorators.http import require_POST
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from console.identity import OidcProvider
from console.sign_in import PROVIDER_KEY, Claimed, Refused, Unreachable, refuse, sign_in_identity, unseal

log = logging.getLogger(__name__)
DISCOVERY_TTL = 3600.0
_discovery: dict[str, tuple[float, dict]] = {}
_discovery_lock = threading.Lock()


class DiscoveryError(Exception):
    pass


def provider(name: str) -> OidcProvider:
    found = settings.SSO_OIDC_PROVIDERS.get(name)
    if found is None:
        raise Http404("no such identity provider")
    return found


def discovery(p: OidcProvider) -> dict:
    """The provider's discovery document, fetched once an hour per process. Its `issuer` must be the configured one
    (OpenID Connect Discovery 1.0, section 4.3), or tokens could be accepted from whoever answered."""
    now = time.monotonic()
    with _discovery_lock:
        cached = _discovery.get(p.name)
        if cached and cached[0] > now:
            return cached[1]
    url = f"{p.issuer}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        doc = response.json()
    except (requests.RequestException, ValueError) as e:
        raise DiscoveryError(f"{p.button}: the provider's discovery document ({url}) could not be read: {e}") from e
    if not isinstance(doc, dict) or doc.get("issuer", "").rstrip("/") != p.issuer:
        raise DiscoveryError(f"{p.button}: the discovery document names another issuer than {p.issuer}")
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not doc.get(key):
            raise DiscoveryError(f"{p.button}: the discovery document has no {key}")
    with _discovery_lock:
        _discovery[p.name] = (now + DISCOVERY_TTL, doc)
    return doc


class _PerProvider:
    """mozilla-django-oidc's views and backend read their settings through `get_settings`: answer per provider."""

    oidc_provider: OidcProvider

    def get_settings(self, attr, *args):
        p = self.oidc_provider
        per_provider = {
            "OIDC_RP_CLIENT_ID": p.client_id,
            "OIDC_RP_CLIENT_SECRET": p.client_secret.get_secret_value(),
            "OIDC_RP_SCOPES": p.scopes,
            "OIDC_AUTHENTICATION_CALLBACK_URL": f"oidc_callback_{p.name}",
            "OIDC_AUTH_REQUEST_EXTRA_PARAMS": dict(p.extra_params),
        }
        if attr in per_provider:
            return per_provider[attr]
        return getattr(settings, attr, *args) if args else getattr(settings, attr)


class AuthenticateView(_PerProvider, OIDCAuthenticationRequestView):
    """/oidc/<name>/authenticate/: to the provider, with state, nonce and a PKCE challenge kept in the session."""

    def __init__(self, **kwargs):  # the library's reads one provider's settings here; ours are per request
        for key, value in kwargs.items():
            setattr(self, key, value)

    def get(self, request, name):
        self.oidc_provider = provider(name)
        try:
            endpoints = discovery(self.oidc_provider)
        except DiscoveryError as e:
            log.warning("%s", e)
            refuse(request, "The identity provider could not be reached", str(e))
            return HttpResponseRedirect(reverse("sign_in_refused"))
        self.OIDC_OP_AUTH_ENDPOINT = endpoints["authorization_endpoint"]
        self.OIDC_RP_CLIENT_ID = self.oidc_provider.client_id
        response = super().get(request)
        # Bind the state to this provider: its callback is the only one that may use it (mix-up defence).
        state = parse_qs(urlsplit(response["Location"]).query).get("state", [""])[0]
        request.session["oidc_states"][state]["provider"] = name
        request.session.modified = True
        return response


class CallbackView(_PerProvider, OIDCAuthenticationCallbackView):
    """/oidc/<name>/callback/: the code is exchanged, the ID token checked, the role mapped, the user signed in."""

    def get(self, request, name):
        self.oidc_provider = provider(name)
        request.oidc_provider = self.oidc_provider  # the backend reads it: auth.authenticate passes only the request
        state = request.GET.get("state")
        issued = request.session.get("oidc_states", {}).get(state) if state else None
        if issued is not None and issued.get("provider") != name:
            refuse(request, "Sign-in refused", "The answer came back to another provider's address than it left from.")
            return HttpResponseRedirect(reverse("sign_in_refused"))
        if request.GET.get("error"):
            # The provider refused (the user denied consent, or is not assigned to the application there).
            description = request.GET.get("error_description") or request.GET["error"]
            refuse(request, f"{self.oidc_provider.button} refused the sign-in", description[:300])
        return super().get(request)

    @property
    def failure_url(self):
        return reverse("sign_in_refused")

    def login_success(self):
        response = super().login_success()
        self.request.session[PROVIDER_KEY] = self.oidc_provider.name
        if not getattr(self.user, "_oidc_refreshable", True):
            # Without a refresh token nobody can ask the provider about this user again: the session lasts one
            # revalidation interval, then they sign in again (which their provider session makes one click).
            self.request.session.set_expiry(settings.SSO_REFRESH_SECONDS)
        return response


class ProviderBackend(_PerProvider, OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend for the provider whose callback is being answered."""

    def __init__(self, *args, **kwargs):  # the library's reads one provider's settings here; ours are per request
        from django.contrib.auth import get_user_model

        self.UserModel = get_user_model()

    def authenticate(self, request, **kwargs):
        p = getattr(request, "oidc_provider", None) if request is not None else None
        if p is None or "nonce" not in kwargs:
            return None  # a password login, or another backend's
        self.oidc_provider = p
        self._configure(discovery(p))
        self._token_info: dict = {}
        try:
            return super().authenticate(request, **kwargs)
        except requests.HTTPError as e:
            # The token endpoint refused the code (a PKCE verifier that does not match, a code used twice).
            log.warning("OIDC %s: %s", p.name, e)
            refuse(request, f"{p.button} refused the sign-in", "The provider did not accept the sign-in's code.")
            return None
        except SuspiciousOperation as e:
            log.warning("OIDC %s: %s", p.name, e)
            refuse(request, "Sign-in refused", f"The token from {p.button} did not pass its checks: {e}")
            return None

    def _configure(self, endpoints: dict) -> None:
        self.OIDC_OP_TOKEN_ENDPOINT = endpoints["token_endpoint"]
        self.OIDC_OP_USER_ENDPOINT = endpoints.get("userinfo_endpoint")
        self.OIDC_OP_JWKS_ENDPOINT = endpoints["jwks_uri"]
        self.OIDC_RP_CLIENT_ID = self.oidc_provider.client_id
        self.OIDC_RP_CLIENT_SECRET = self.oidc_provider.client_secret.get_secret_value()
        algs = endpoints.get("id_token_signing_alg_values_supported") or ["RS256"]
        self.OIDC_RP_SIGN_ALGO = "RS256" if "RS256" in algs else algs[0]
        self.OIDC_RP_IDP_SIGN_KEY = None

    def retrieve_matching_jwk(self, token):
        if "kid" in jwt.get_unverified_header(token):
            return super().retrieve_matching_jwk(token)
        # RFC 7515 makes `kid` optional, and a provider with one signing key may leave it out: then that sole key of
        # the token's algorithm is the one, and with several keys the token is refused.
        alg = jwt.get_unverified_header(token).get("alg")
        response = requests.get(self.OIDC_OP_JWKS_ENDPOINT, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        keys = [k for k in response.json().get("keys", []) if k.get("use", "sig") == "sig" and k.get("alg", alg) == alg]
        if len(keys) != 1:
            raise SuspiciousOperation("the token names no signing key and the provider has several")
        return jwt.PyJWK(keys[0])

    def get_token(self, payload):
        self._token_info = super().get_token(payload)
        return self._token_info

    def verify_token(self, token, **kwargs):
        """The library checks the signature, expiry and nonce; the issuer and audience are checked here."""
        claims = super().verify_token(token, **kwargs)
        check_issued_for_us(claims, self.oidc_provider, discovery(self.oidc_provider))
        return claims

    def get_userinfo(self, access_token, id_token, payload):
        if not self.OIDC_OP_USER_ENDPOINT:
            return {}
        info = super().get_userinfo(access_token, id_token, payload)
        if info.get("sub") != payload.get("sub"):  # OpenID Connect Core 5.3.2: it MUST match, or it is not theirs
            raise SuspiciousOperation("userinfo's sub is not the ID token's")
        return info

    def get_or_create_user(self, access_token, id_token, payload):
        claims = {**payload, **self.get_userinfo(access_token, id_token, payload)}
        claimed = claimed_from(self.oidc_provider, claims)
        refresh_token = self._token_info.get("refresh_token")
        try:
            user = sign_in_identity(claimed, self.oidc_provider.button, refresh_token=refresh_token or "")
        except Refused as e:
            log.info("OIDC %s: %s refused: %s", self.oidc_provider.name, claimed.subject, e)
            refuse(self.request, "No Switchyard role", str(e), claimed.values)
            return None
        user._oidc_refreshable = bool(refresh_token)
        return user


def check_issued_for_us(claims: dict, p: OidcProvider, endpoints: dict) -> None:
    if str(claims.get("iss", "")).rstrip("/") != endpoints["issuer"].rstrip("/"):
        raise SuspiciousOperation("the token's issuer is not the provider's")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if p.client_id not in audiences:
        raise SuspiciousOperation("the token was not issued for this client")
    if len(audiences) > 1 and claims.get("azp") not in (None, p.client_id):
        raise SuspiciousOperation("the token's authorized party is another client")


def claimed_from(p: OidcProvider, claims: dict) -> Claimed:
    values = p.role_values(claims)
    login = next((str(claims[c]) for c in p.username_claims if claims.get(c)), str(claims["sub"]))
    return Claimed(
        provider=p.key,
        subject=str(claims["sub"]),
        login=login,
        values=values,
        role=p.roles.role_for(values),
        email=str(claims.get("email") or "")[:254],
        first_name=str(claims.get("given_name") or ""),
        last_name=str(claims.get("family_name") or ""),
    )


def revalidate(identity) -> Claimed | None:
    """Ask the provider about `identity` again with its refresh token: the claims now, or None when the provider
    says the grant is gone (the user removed or disabled there, or the session revoked). Raises Unreachable when the
    provider cannot be asked, or when there is no refresh token to ask with (the session then ends on its own)."""
    from console.sign_in import seal

    name = identity.provider.removeprefix("oidc:")
    p = settings.SSO_OIDC_PROVIDERS.get(name)
    if p is None:
        return None  # the provider was removed from the settings: its users' sessions end
    token = unseal(identity.refresh_token)
    if not token:
        raise Unreachable("no refresh token to revalidate with")
    try:
        endpoints = discovery(p)
        response = requests.post(
            endpoints["token_endpoint"],
            data={"grant_type": "refresh_token", "refresh_token": token, "scope": p.scopes},
            auth=(p.client_id, p.client_secret.get_secret_value()),
            timeout=settings.OIDC_TIMEOUT,
        )
    except (DiscoveryError, requests.RequestException) as e:
        raise Unreachable(str(e)) from e
    if response.status_code >= 500:
        raise Unreachable(f"token endpoint answered {response.status_code}")
    if response.status_code != 200:
        return None  # invalid_grant: the provider will not vouch for this user any more
    tokens = response.json()
    backend = ProviderBackend()
    backend.oidc_provider = p
    backend._configure(endpoints)
    claims: dict = {}
    try:
        if tokens.get("id_token"):
            claims = _verify(backend, tokens)
            if claims.get("sub") != identity.subject:
                return None
        info = {}
        if tokens.get("access_token"):
            info = backend.get_userinfo(tokens["access_token"], None, {"sub": identity.subject})
    except requests.HTTPError as e:
        if e.response is not None and 400 <= e.response.status_code < 500:
            return None  # the fresh access token is refused: the user is gone there
        raise Unreachable(str(e)) from e
    except requests.RequestException as e:
        raise Unreachable(str(e)) from e
    except SuspiciousOperation:
        return None
    claims = {**claims, **info, "sub": identity.subject}
    if tokens.get("refresh_token"):  # rotated: the old one no longer works
        identity.refresh_token = seal(tokens["refresh_token"])
        identity.save(update_fields=["refresh_token"])
    return claimed_from(p, claims)


def _verify(backend: ProviderBackend, tokens: dict) -> dict:
    """A refreshed ID token has no nonce (OpenID Connect Core 12.2); its signature, issuer and audience still count."""
    key = backend.retrieve_matching_jwk(tokens["id_token"])
    claims = backend.get_payload_data(tokens["id_token"], key)
    check_issued_for_us(claims, backend.oidc_provider, discovery(backend.oidc_provider))
    return claims


@require_POST
def logout(request: HttpRequest):
    """Sign out here, and at the provider too where it has an end_session_endpoint (RP-initiated logout)."""
    name = request.session.get(PROVIDER_KEY)
    id_token = request.session.get("oidc_id_token")
    destination = request.build_absolute_uri(reverse(settings.LOGOUT_REDIRECT_URL))
    auth.logout(request)
    p = settings.SSO_OIDC_PROVIDERS.get(name) if name else None
    if p is not None and p.logout:
        try:
            end_session = discovery(p).get("end_session_endpoint")
        except DiscoveryError:
            end_session = None
        if end_session:
            query = {"client_id": p.client_id, "post_logout_redirect_uri": destination}
            if id_token:
                query["id_token_hint"] = id_token
            return HttpResponseRedirect(f"{end_session}?{urlencode(query)}")
    return HttpResponseRedirect(destination)


def urlpatterns_for(providers) -> list:
    patterns = []
    for name in providers:
        callback = CallbackView.as_view()
        patterns.append(path(f"oidc/{name}/callback/", callback, {"name": name}, name=f"oidc_callback_{name}"))
    patterns.append(path("oidc/<str:name>/authenticate/", AuthenticateView.as_view(), name="oidc_authenticate"))
    return patterns
