"""The accounts-and-security collaborators of a replica, built from the config in one place."""

from __future__ import annotations

from dataclasses import dataclass

from accounts.audit import AuditTrail
from accounts.credentials import CredentialService
from accounts.crypto import VersionedCipher, derive_key_spec
from accounts.mail import Mailer, open_mailer
from accounts.oauth import OAuthService
from accounts.orgs import OrgService
from accounts.service import AccountService
from accounts.settings import AuthSettings, SecretsSettings
from accounts.throttle import LoginThrottle
from accounts.twofactor import TwoFactor
from accounts.vault import SecretsStore
from serve_apps.gateway.config import GatewayConfig
from state.db import Database
from state.kv import KeyValueStore

__all__ = ["SecurityServices", "secrets_cipher"]


def secrets_cipher(secrets: SecretsSettings, auth: AuthSettings) -> VersionedCipher:
    """The configured keys; without any (development), one derived from the JWT secret."""
    specs = [key.get_secret_value() for key in secrets.keys]
    if not specs:
        if auth.jwt_secret is None:
            raise ValueError("no secrets keys and no JWT secret to derive one from")
        specs = [derive_key_spec(auth.jwt_secret.get_secret_value())]
    return VersionedCipher(specs)


@dataclass(frozen=True, slots=True)
class SecurityServices:
    accounts: AccountService
    cipher: VersionedCipher
    two_factor: TwoFactor
    credentials: CredentialService
    oauth: OAuthService
    secrets: SecretsStore
    audit: AuditTrail
    orgs: OrgService
    throttle: LoginThrottle
    mailer: Mailer

    @classmethod
    def open(cls, config: GatewayConfig, db: Database, kv: KeyValueStore) -> SecurityServices:
        cipher = secrets_cipher(config.secrets, config.auth)
        two_factor = TwoFactor(db, cipher, config.auth)
        accounts = AccountService(db, config.auth, two_factor=two_factor, kv=kv)
        mailer = open_mailer(config.auth.mail)
        return cls(
            accounts=accounts,
            cipher=cipher,
            two_factor=two_factor,
            credentials=CredentialService(db, config.auth, accounts, mailer),
            oauth=OAuthService(db, kv, config.auth.oauth, revocations=accounts.revocations),
            secrets=SecretsStore(db, cipher),
            audit=AuditTrail(db),
            orgs=OrgService(db, config.auth, mailer),
            throttle=LoginThrottle(kv),
            mailer=mailer,
        )
