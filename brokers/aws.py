"""AWS credentials for the SQS adapter and Kafka's AWS_MSK_IAM mechanism, from one place.

Explicit keys, else a named profile, else botocore's default chain (environment, shared files, container or instance
role). With `role_arn`, those are only the source: the role is assumed from them through STS, and botocore's own
refreshable credentials (AssumeRoleCredentialFetcher + DeferredRefreshableCredentials, what a profile's `role_arn`
uses) assume it again before the temporary credentials expire — nothing here counts down by hand.
"""

from __future__ import annotations

from typing import Any

import boto3
import botocore.exceptions
import botocore.session
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    Credentials,
    DeferredRefreshableCredentials,
)

from brokers.base import BrokerConfigError


def aws_session(
    region: str | None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    profile: str | None = None,
    role_arn: str | None = None,
    external_id: str | None = None,
    role_session_name: str = "switchyard",
    sts_endpoint_url: str | None = None,
) -> boto3.session.Session:
    """A boto3 session for `region` with the credentials described in the module docstring.

    STS calls for `role_arn` go to `sts_endpoint_url` when given (a local emulator such as moto or LocalStack serves
    STS on the same endpoint as SQS), else where botocore sends them (AWS_ENDPOINT_URL_STS is honoured).
    """
    if bool(access_key_id) != bool(secret_access_key):
        raise BrokerConfigError("access_key_id and secret_access_key go together: give both or neither")
    if session_token and not access_key_id:
        raise BrokerConfigError("session_token needs access_key_id and secret_access_key")
    if external_id and not role_arn:
        raise BrokerConfigError("external_id is only used with role_arn")
    try:
        source = botocore.session.Session(profile=profile or None)
        if region:
            source.set_config_variable("region", region)
        if access_key_id:
            source.set_credentials(access_key_id, secret_access_key, session_token)
        if profile:
            source.get_scoped_config()  # raises ProfileNotFound now rather than at the first call
    except botocore.exceptions.ProfileNotFound as exc:
        raise BrokerConfigError(f"profile: {exc}") from None
    if not role_arn:
        return boto3.session.Session(botocore_session=source)

    def create_client(service: str, **kwargs: Any):
        if sts_endpoint_url:
            kwargs["endpoint_url"] = sts_endpoint_url
        kwargs.setdefault("region_name", region)
        return source.create_client(service, **kwargs)

    extra_args: dict[str, Any] = {"RoleSessionName": role_session_name or "switchyard"}
    if external_id:
        extra_args["ExternalId"] = external_id
    fetcher = _SourceFetcher(create_client, source, role_arn, extra_args)
    assumed = botocore.session.Session()
    if region:
        assumed.set_config_variable("region", region)
    # Deferred: nothing is assumed until the first call needs credentials, so constructing an adapter never
    # touches the network (a broken role shows on the health check, not at start-up).
    assumed._credentials = DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method="assume-role")
    return boto3.session.Session(botocore_session=assumed)


class _SourceFetcher(AssumeRoleCredentialFetcher):
    """AssumeRoleCredentialFetcher whose source credentials are resolved on first use (the default chain may reach
    the instance metadata service, which must not happen in a constructor)."""

    def __init__(self, client_creator, source_session: botocore.session.Session, role_arn: str, extra_args: dict):
        self._source_session = source_session
        super().__init__(client_creator, None, role_arn, extra_args=extra_args)

    def _get_credentials(self):
        if self._source_credentials is None:
            self._source_credentials = self._source_session.get_credentials()
            if self._source_credentials is None:
                raise BrokerConfigError("role_arn: no AWS credentials to assume the role with")
        return super()._get_credentials()


class SessionCredentialProvider(CredentialProvider):
    """The credentials of a boto3 session as a botocore CredentialProvider (what the MSK IAM signer accepts), so the
    signer uses the same refreshing credentials as everything else."""

    METHOD = "switchyard-session"

    def __init__(self, session: boto3.session.Session):
        super().__init__()
        self._session = session

    def load(self):
        credentials = self._session.get_credentials()
        if credentials is None:
            raise BrokerConfigError("no AWS credentials found (keys, profile or the default chain)")
        frozen = credentials.get_frozen_credentials()  # one consistent triple, even mid-refresh
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token, method=self.METHOD)
