"""``StackSecrets``: every credential the stack needs, generated, never typed by a human."""


from typing import Mapping, Optional, TypedDict

import pulumi
import pulumi_random as random


def generated_secret(resource_name: str, length: int, opts: pulumi.ResourceOptions,
                     mixed: bool = True) -> pulumi.Output[str]:
    """A generated credential as a secret Output. Alphanumeric only: the values go into URLs
    (DSN, redis://) and JSON bodies unescaped; length, not symbols, carries the entropy.
    ``mixed`` requires at least two lower, upper and numeric characters (password rules)."""
    extra = {"min_lower": 2, "min_upper": 2, "min_numeric": 2} if mixed else {}
    res = random.RandomPassword(resource_name, length=length, special=False, opts=opts, **extra)
    return pulumi.Output.secret(res.result)


def rotation_trigger(resource_name: str, credentials: Mapping[str, pulumi.Input[str]],
                     opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
    """A value that changes whenever one of ``credentials`` changes and reveals nothing
    about them: the hex of a ``RandomId`` whose ``keepers`` are the credentials. A changed
    keeper makes the provider replace the resource (pulumi-random: "Arbitrary map of values
    that, when changed, will trigger recreation of resource"), so the hex is new random
    bytes, never a digest of a secret. The keepers are stored in state as secrets (the
    inputs are secret Outputs, and the engine keeps an output secret whose input was);
    the hex is plain, so a pod template carrying it stays diffable in previews. Put it on a
    pod template (the pods roll) or in a Job's name (the Job is re-created)."""
    trigger = random.RandomId(resource_name, byte_length=8,
                              keepers={k: pulumi.Output.secret(v) for k, v in credentials.items()}, opts=opts)
    return trigger.hex


#: Pod-template annotation carrying a rotation trigger (see ``rotation_trigger``).
ROTATION_ANNOTATION = "new-api.io/credentials-rotation"


class StackSecretsArgs(TypedDict, total=False):
    session_secret_length: int
    """Length of SESSION_SECRET / CRYPTO_SECRET (default 64 characters, ~380 bits)."""
    password_length: int
    """Length of the datastore passwords (default 32)."""


class StackSecrets(pulumi.ComponentResource):
    """Generates New API's ``SESSION_SECRET`` and ``CRYPTO_SECRET`` (shared by every pod:
    an unset SESSION_SECRET is random per process and breaks logins across pods; the
    literal ``random_string`` is fatal, CONTRACT §2a), the bootstrap admin password and
    the Postgres and Redis passwords.

    Values are ``pulumi_random`` results: secret in state (encrypted by the stack's
    secrets provider), exposed here only as ``Output.secret``. Consumers write them into
    Kubernetes Secrets and reference them with ``secretKeyRef``. Rotate one with
    ``pulumi up --replace <urn of its RandomPassword>``.
    """

    session_secret: pulumi.Output[str]
    """SESSION_SECRET (secret)."""
    crypto_secret: pulumi.Output[str]
    """CRYPTO_SECRET (secret)."""
    admin_password: pulumi.Output[str]
    """Password of the bootstrapped root user (secret)."""
    database_password: pulumi.Output[str]
    """Password of the app's Postgres role (secret)."""
    redis_password: pulumi.Output[str]
    """Redis AUTH password / ElastiCache auth token (secret)."""

    def __init__(self, name: str, args: StackSecretsArgs,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("new-api:index:StackSecrets", name, None, opts)
        key_len = int(args.get("session_secret_length", 64))
        pw_len = int(args.get("password_length", 32))
        if key_len < 32:
            raise ValueError(f"session_secret_length: {key_len} is too short; use at least 32")
        if pw_len < 16:
            raise ValueError(f"password_length: {pw_len} is too short; use at least 16")
        child = pulumi.ResourceOptions(parent=self)

        def password(suffix: str, length: int) -> pulumi.Output[str]:
            return generated_secret(f"{name}-{suffix}", length, child)

        self.session_secret = password("session-secret", key_len)
        self.crypto_secret = password("crypto-secret", key_len)
        # New API limits passwords to 8-20 characters (model.User validation).
        self.admin_password = password("admin-password", 20)
        self.database_password = password("database-password", pw_len)
        self.redis_password = password("redis-password", pw_len)
        self.register_outputs({
            "session_secret": self.session_secret,
            "crypto_secret": self.crypto_secret,
            "admin_password": self.admin_password,
            "database_password": self.database_password,
            "redis_password": self.redis_password,
        })
