"""Who is calling: API key → Principal, through an in-process TTL cache, then Redis, then the database.

Keys are looked up only by their HMAC digest (accounts.keys.key_digest); the plaintext is never
stored, logged or echoed. Changes to keys and their owners reach every worker within a second:
gateway.signals bumps (gateway.versions) a Redis "auth version" on every save/delete, each process compares it with
the version it last saw at most every 250 ms and drops its local cache when it moved. Without
Redis (embedded mode, one process) the signal clears the cache directly and entries live ≤ 1 s,
which also covers writes made by another process such as a management command.
"""
from __future__ import annotations

import asyncio
import io
import logging
import pickle
import time
from functools import lru_cache
from typing import Any

from django.conf import settings

from accounts.keys import digests_equal, key_digest
from accounts.master_keys import master_key_file
from accounts.models import VirtualKey
from gateway import http, registry
from gateway.context import EntityLimits, Principal
from gateway.memory.settings import memory_settings
from gateway.routing import wildcards
from llmur.core.db import db_call
from llmur.core.errors import LlmurError

logger = logging.getLogger("llmur.gateway.auth")

AUTH_VERSION_KEY = "llmur:auth_version"
VERSION_CHECK_INTERVAL = 0.25
# With Redis the version check invalidates; the TTL only bounds memory and a missed bump.
LOCAL_TTL_WITH_REDIS = 10.0
LOCAL_TTL_EMBEDDED = 1.0
NEGATIVE_TTL = 2.0
REDIS_TTL = 300
REDIS_NEGATIVE_TTL = 10
LOCAL_CACHE_MAX = 100_000
ALL_MODELS = frozenset({"*", "all-proxy-models"})

MASTER = Principal(is_master=True, display="master key")

# digest → (expires at, Principal, or the refusal message for a known-bad digest)
_cache: dict[str, tuple[float, Principal | str]] = {}
_seen: dict[str, Any] = {"version": None, "deployments": None, "checked": 0.0, "generation": 0}


def unauthorized(message: str, principal: Principal | None = None) -> LlmurError:
    """401; `principal` is the recognised key refused (e.g. expired), so its refusal is counted against it."""
    return LlmurError(401, "invalid_api_key", message, param="key", code="401", entity=principal)


MISSING_KEY = ("No API key provided. Send it as 'Authorization: Bearer sk-...' or 'x-api-key: sk-...'.")
UNKNOWN_KEY = ("Authentication Error: invalid API key (token_not_found_in_db). Check the key, or ask an "
               "operator for a new one.")


def key_from_headers(meta: dict[str, Any]) -> str:
    """The API key from `Authorization: Bearer KEY`, `x-api-key` or `api-key`, or ''."""
    value = meta.get("HTTP_AUTHORIZATION")
    if value:
        scheme, separator, token = value.partition(" ")
        if not separator:
            return value.strip()  # a bare key, as some clients send it
        return token.strip() if scheme.lower() == "bearer" else ""
    return (meta.get("HTTP_X_API_KEY") or meta.get("HTTP_API_KEY") or "").strip()


@lru_cache(maxsize=1)
def _master_digests() -> tuple[str, ...]:
    digests = [key_digest(key) for key in settings.LLMUR.master_keys]
    if not digests:
        try:
            digests.append(master_key_file().read_text().strip())
        except OSError:
            pass
    return tuple(d for d in digests if d)


def _is_master(digest: str) -> bool:
    found = False
    for candidate in _master_digests():
        # No early exit: every candidate is compared, in constant time.
        found |= digests_equal(digest, candidate)
    return found


def cache_clear() -> None:
    """Forget every cached key here, and re-read the shared auth version on the next request.

    Called after this process changed a key or an owner (and bumped the version): without the
    re-read, the next request would find the old snapshot in Redis under the version it last saw.
    """
    _cache.clear()
    _seen["generation"] += 1
    _seen["checked"] = 0.0


def cache_state() -> tuple[str | None, int]:
    """The shared auth version last seen and the local cache generation, for caches invalidated alongside."""
    return _seen["version"], _seen["generation"]


def _local_ttl() -> float:
    return LOCAL_TTL_WITH_REDIS if settings.LLMUR.cache.engine == "redis" else LOCAL_TTL_EMBEDDED


async def _check_versions(redis) -> str | None:
    """Compare the shared auth and deployments versions with the last seen, at most once per interval.

    A moved auth version drops the local key cache; a moved deployments version makes the registry
    reload before its next use. One MGET, on at most one request per interval.
    """
    now = time.monotonic()
    if now - _seen["checked"] < VERSION_CHECK_INTERVAL:
        return _seen["version"]
    _seen["checked"] = now
    try:
        auth_raw, deployments_raw = await redis.mget(AUTH_VERSION_KEY, registry.VERSION_KEY)
    except Exception:  # noqa: BLE001 - Redis down: keep serving from the local cache (fail open)
        if _seen.get("redis_ok", True):
            logger.warning("auth version check failed: Redis unreachable; serving keys from the local cache")
        _seen["redis_ok"] = False
        return _seen["version"]
    if not _seen.get("redis_ok", True):
        logger.warning("auth version check: Redis reachable again")
    _seen["redis_ok"] = True
    version = auth_raw.decode() if auth_raw else "0"
    # The first observation counts as a change too: what this process loaded before it knew the
    # versions (the registry at start-up, say) may already be older than them.
    if version != _seen["version"]:
        _cache.clear()
        _seen["generation"] += 1
        _seen["version"] = version
    deployments = deployments_raw.decode() if deployments_raw else "0"
    if deployments != _seen["deployments"]:
        registry.mark_stale()
        _seen["deployments"] = deployments
    return version


async def authenticate(key: str) -> Principal:
    """The Principal for an API key, or LlmurError 401."""
    if not key:
        raise unauthorized(MISSING_KEY)
    digest = key_digest(key)
    redis = http.redis()
    version = await _check_versions(redis) if redis is not None else None
    if _is_master(digest):
        return MASTER
    now = time.monotonic()
    hit = _cache.get(digest)
    if hit is not None and hit[0] > now:
        entry = hit[1]
    else:
        entry, generation = await _shared_lookup(digest, redis, version)
        if len(_cache) >= LOCAL_CACHE_MAX:
            _cache.clear()
        # A key changed while this lookup was under way must not be cached from the older read:
        # the clear that the change caused has already happened and would not happen again.
        if generation == _seen["generation"]:
            ttl = _local_ttl() if isinstance(entry, Principal) else min(NEGATIVE_TTL, _local_ttl())
            _cache[digest] = (now + ttl, entry)
    if isinstance(entry, str):
        raise unauthorized(entry)
    if entry.expires_at is not None and entry.expires_at.timestamp() <= time.time():
        raise unauthorized("Authentication Error: this key has expired. Ask an operator to renew it.", entry)
    return entry


_lookups: dict[tuple[str, str | None], tuple[asyncio.Task, int]] = {}


async def _shared_lookup(digest: str, redis, version: str | None) -> tuple[Principal | str, int]:
    """One lookup (Redis, then the database) for every request with this key that misses at once.

    When a key's local entry expires, every request of it in flight misses together: at c=128 that
    was up to 128 Redis reads on as many new connections, or as many database lookups, each in a
    thread of its own. They now wait for one lookup, run as a task so a caller that is cancelled
    (its client left) does not cancel it for the others. Returns the entry and the cache
    generation the lookup started in: a lookup that began before a key change is not joined after
    it, and its answer is not cached (see authenticate).
    """
    generation = _seen["generation"]
    shared = _lookups.get((digest, version))
    if shared is None or shared[1] != generation or shared[0].get_loop() is not asyncio.get_running_loop():
        task = asyncio.ensure_future(_lookup(digest, redis, version))
        shared = _lookups[(digest, version)] = (task, generation)
        task.add_done_callback(lambda done, key=(digest, version): _lookup_done(key, done))
    return await asyncio.shield(shared[0]), shared[1]


def _lookup_done(key: tuple[str, str | None], task: asyncio.Task) -> None:
    if _lookups.get(key, (None,))[0] is task:
        del _lookups[key]
    if not task.cancelled():
        task.exception()   # retrieved: a failure every waiter left before does not warn


class _SnapshotUnpickler(pickle.Unpickler):
    """Loads only the types a key snapshot is made of.

    Redis is a cache, not a trusted code source: a plain pickle.loads of a value someone wrote
    into it would run arbitrary code in every web worker. Anything else is refused (and the key
    is looked up in the database instead).
    """

    ALLOWED = frozenset({("gateway.context", "Principal"), ("gateway.context", "EntityLimits"),
                         ("gateway.context", "MemorySettings"),
                         ("decimal", "Decimal"), ("datetime", "datetime"), ("datetime", "timezone"),
                         ("datetime", "timedelta"), ("gateway.routing.wildcards", "ModelAllowList")})

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a key snapshot")
        return super().find_class(module, name)


def _load_snapshot(raw: bytes) -> tuple:
    return _SnapshotUnpickler(io.BytesIO(raw)).load()


async def _lookup(digest: str, redis, version: str | None) -> Principal | str:
    # "p3": Principal gained fields (aliases, log_requests, then memory); older snapshots are not read.
    redis_key = f"llmur:auth:p3:{version}:{digest}"
    if redis is not None:
        try:
            cached = await redis.get(redis_key)
            if cached is not None:
                return _decode(_load_snapshot(cached))
        except pickle.UnpicklingError as exc:
            logger.error("auth cache entry refused (%s); looking the key up in the database", exc)
        except Exception:  # noqa: BLE001 - fall through to the database
            logger.warning("auth cache read failed: Redis unreachable")
    try:
        snapshot = await db_call(principal_snapshot, digest=digest)
    except Exception:  # noqa: BLE001 - known keys keep working from the caches; this one cannot be checked
        logger.exception("key lookup failed: database unreachable?")
        raise LlmurError(503, "api_error", "The gateway cannot check this key right now (its database is "
                         "unreachable); try again shortly.", code="503") from None
    if redis is not None:
        try:
            ttl = REDIS_NEGATIVE_TTL if snapshot[0] == "unknown" else REDIS_TTL
            await redis.set(redis_key, pickle.dumps(snapshot), ex=ttl)
        except Exception:  # noqa: BLE001
            logger.warning("auth cache write failed: Redis unreachable")
    return _decode(snapshot)


def _decode(snapshot: tuple) -> Principal | str:
    """A Principal, or the message a refused or unknown key gets."""
    kind = snapshot[0]
    if kind == "ok":
        return snapshot[1]
    return snapshot[1] if kind == "refused" else UNKNOWN_KEY


def _allowed(*lists: list[str] | None) -> frozenset[str] | None:
    """Intersection of the non-empty allow-lists (patterns like "anthropic/*" included); None when none restricts."""
    restricting = [models for models in lists if models and not ALL_MODELS & set(models)]
    return wildcards.allow_list(restricting) if restricting else None


def _limits(kind: str, entity: Any) -> EntityLimits:
    return EntityLimits(kind=kind, id=entity.pk, max_budget=entity.max_budget, soft_budget=entity.soft_budget,
                        budget_duration=entity.budget_duration, rpm_limit=entity.rpm_limit,
                        tpm_limit=entity.tpm_limit, max_parallel_requests=entity.max_parallel_requests)


def _member_limits(user: Any, team: Any) -> tuple[EntityLimits, ...]:
    """The key's user's budget in the key's team (LiteLLM's max_budget_in_team), when one is set."""
    from accounts.models import TeamMembership

    if user is None or team is None:
        return ()
    membership = TeamMembership.objects.filter(team=team, user=user, max_budget__isnull=False).first()
    if membership is None:
        return ()
    return (EntityLimits(kind="team_member", id=membership.pk, max_budget=membership.max_budget,
                         name=f"{user.username} in team {team.name or team.public_id}"),)


def principal_snapshot(*, digest: str) -> tuple:
    """Load a virtual key with its owners in one query and snapshot it.

    Returns ("ok", Principal), ("refused", reason) or ("unknown",): a picklable value for the
    Redis cache. Runs in a worker thread; the database connection is released afterwards.
    """
    key = (VirtualKey.objects
           .select_related("user", "team", "team__organization", "project", "project__team",
                           "project__organization", "organization")
           .filter(key_hash=digest).first())
    if key is None:
        return ("unknown",)
    credentials = ({c.provider: c.encrypted_api_key for c in key.project.credentials.all()}
                   if key.project is not None else {})
    project = key.project
    team = key.team or (project.team if project else None)
    organization = key.organization or (team.organization if team else None) or (
        project.organization if project else None)
    if key.blocked:
        return ("refused", "Authentication Error: this key is blocked. An operator can unblock it.")
    if key.user is not None and not key.user.is_active:
        return ("refused", "Authentication Error: the user who owns this key is deactivated.")
    if team is not None and team.blocked:
        return ("refused", f"Authentication Error: team {team.name!r} is blocked.")
    if organization is not None and organization.blocked:
        return ("refused", f"Authentication Error: organization {organization.name!r} is blocked.")
    if project is not None and not project.is_active:
        return ("refused", f"Authentication Error: project {project.name!r} is inactive.")
    owners = [("key", key), ("user", key.user), ("project", project), ("team", team), ("organization", organization)]
    principal = Principal(
        is_master=False, key_id=key.pk, key_hash=digest, display=key.display, alias=key.key_alias,
        user_id=key.user_id, team_id=team.pk if team else None, project_id=project.pk if project else None,
        organization_id=organization.pk if organization else None,
        allowed_models=_allowed(*(getattr(e, "allowed_models", None) for _, e in owners if e is not None)),
        limits=tuple(_limits(kind, entity) for kind, entity in owners if entity is not None)
        + _member_limits(key.user, team),
        project_credentials=credentials, expires_at=key.expires_at, metadata=dict(key.metadata or {}),
        aliases=_aliases(team, key),
        log_requests=bool(key.log_requests or (project is not None and project.log_requests)
                          or (team is not None and team.log_requests)),
        memory=memory_settings(key, project, team),
    )
    return ("ok", principal)


def _aliases(*owners: Any) -> dict[str, str]:
    """The owners' alias maps merged, later ones winning (team first, then the key)."""
    merged: dict[str, str] = {}
    for owner in owners:
        table = getattr(owner, "aliases", None)
        if not isinstance(table, dict):
            continue   # unset, or not a mapping (the admin stores whatever JSON it was given)
        for name, target in table.items():
            if isinstance(name, str) and isinstance(target, str) and target:
                merged[name] = target
    return merged
