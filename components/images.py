"""Default container images, pinned to exact version tags (never ``latest``).

One place for every image the components run; stack config can override each.

New API: ``v1.0.0-rc.25`` (NEWAPI-CONTRACT.md §8). The stable line ``v0.13.2`` has no
SIGTERM drain (``SHUTDOWN_TIMEOUT_SECONDS``), no ``TRUSTED_PROXIES`` and no
``SESSION_COOKIE_*``, all of which the app tier sets; rc.25 is the release candidate
matching the source the contract was read from. Avoid rc.37 (memory regression,
upstream issue #7361). Pin the digest in stack config once resolved
(``docker buildx imagetools inspect calciumion/new-api:v1.0.0-rc.25``): a tag can be
re-pushed, a digest cannot.
"""

NEW_API = "calciumion/new-api:v1.0.0-rc.25"
