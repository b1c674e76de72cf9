"""Profiles in Redis: one versioned JSON document, an atomic publish, and routers that follow it live.

Redis layout (prefix configurable, default "quantmesh:profiles"):
- `<prefix>:document`  the current `ProfileDocument` as JSON (its `version` field inside);
- `<prefix>:version`   the current version, an integer (kept apart so that a corrupt document cannot block a fix);
- `<prefix>:updates`   pub/sub channel; each message is a new version number.

`ProfileStore.publish` validates first (nothing invalid reaches Redis), then, in one WATCH/MULTI/EXEC transaction,
checks the optional expected version, writes version + 1 and the stamped document, and publishes the version: a
reader sees the old document or the new one, never half of one.

`ActiveProfiles` is what a router routes from: the last good document, swapped in whole (one attribute assignment,
on one event loop). `ProfileFollower` keeps it current: it reads the document, subscribes to the channel, re-reads
on every message, and when Redis is unreachable it keeps the last good document and reconnects with backoff.
A document read from Redis is validated again; an invalid one is logged and ignored.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, WatchError

from core.errors import AbortedError, UnavailableError
from core.profiles import ProfileDocument, ProfileValidationError, parse_profile_document
from core.vocabulary import ProfileSource

log = structlog.get_logger(__name__)

DEFAULT_PREFIX = "quantmesh:profiles"


@dataclass(frozen=True)
class LoadedProfiles:
    """A validated document, where it came from and when this router loaded it."""

    document: ProfileDocument
    source: ProfileSource
    loaded_at: dt.datetime


def connect(redis_url: str, timeout_s: float = 1.0) -> aioredis.Redis:
    """A client that fails fast (no built-in retries: the callers decide what an outage means)."""
    return aioredis.Redis.from_url(
        redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
    )


class ProfileStore:
    """Reads and publishes the profile document in Redis.

    Errors: `UnavailableError` when Redis cannot be reached; `AbortedError` when `expected_version` is stale.
    """

    def __init__(self, client: aioredis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.document_key = f"{prefix}:document"
        self.version_key = f"{prefix}:version"
        self.channel = f"{prefix}:updates"

    async def read(self) -> ProfileDocument | None:
        """The stored document, validated; None when nothing was published yet.

        Raises:
            UnavailableError: Redis unreachable.
            ProfileValidationError: the stored document is invalid.
        """
        try:
            raw = await self.client.get(self.document_key)
        except (RedisError, OSError) as exc:
            raise UnavailableError(f"profile store unreachable: {exc}") from exc
        return None if raw is None else parse_profile_document(raw)

    async def publish(self, document: ProfileDocument, expected_version: int = 0) -> ProfileDocument:
        """Publishes `document` as the next version; returns it as stored (version and published_at set).

        Args:
            document: A validated document (its own version field is ignored).
            expected_version: Publish only if the current version equals this; 0 publishes regardless.

        Raises:
            AbortedError: the current version is not `expected_version` (or changed during the transaction).
            UnavailableError: Redis unreachable; nothing was written.
        """
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(self.version_key)
                        current = int(await pipe.get(self.version_key) or 0)
                        if expected_version and current != expected_version:
                            raise AbortedError(
                                f"expected_version: {expected_version} is stale, the current version is {current}"
                            )
                        stored = document.with_version(current + 1, dt.datetime.now(dt.UTC))
                        pipe.multi()
                        pipe.set(self.document_key, stored.to_json())
                        pipe.set(self.version_key, stored.version)
                        pipe.publish(self.channel, str(stored.version))
                        await pipe.execute()
                        return stored
                    except WatchError:
                        if expected_version:
                            raise AbortedError(
                                f"expected_version: {expected_version} is stale, another publish won"
                            ) from None
        except (RedisError, OSError) as exc:
            raise UnavailableError(f"profile store unreachable, nothing published: {exc}") from exc


class ActiveProfiles:
    """The profiles a router routes from. `current` is replaced whole, never mutated.

    `on_change` callbacks run after each swap (the worker pool follows the endpoints).
    """

    def __init__(self) -> None:
        self.current: LoadedProfiles | None = None
        self._listeners: list[Callable[[LoadedProfiles], None]] = []

    def on_change(self, listener: Callable[[LoadedProfiles], None]) -> None:
        self._listeners.append(listener)

    def swap(self, document: ProfileDocument, source: ProfileSource) -> None:
        self.current = LoadedProfiles(document, source, dt.datetime.now(dt.UTC))
        log.info("profiles_swapped", version=document.version, source=source.value, pairs=len(document.pairs))
        for listener in self._listeners:
            listener(self.current)

    def load_static_file(self, path: Path) -> None:
        """Seeds the profiles from a static JSON file.

        Raises:
            ProfileValidationError: the file is not a valid document (a router must not start on it).
            OSError: the file cannot be read.
        """
        self.swap(parse_profile_document(path.read_bytes()), ProfileSource.STATIC_FILE)


class ProfileFollower:
    """Keeps `ActiveProfiles` equal to the Redis document: subscribe, re-read on each message, reconnect.

    Args:
        store: The Redis store.
        active: The profiles to keep current.
        reconnect_backoff_s: (first, largest) delay between reconnection attempts, seconds.
    """

    def __init__(self, store: ProfileStore, active: ActiveProfiles,
                 reconnect_backoff_s: tuple[float, float] = (0.1, 2.0)) -> None:
        self._store = store
        self._active = active
        self._backoff_s = reconnect_backoff_s
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="profile-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def refresh(self) -> None:
        """Reads the document and swaps it in when it differs from the one in use (invalid ones are skipped)."""
        try:
            document = await self._store.read()
        except ProfileValidationError as exc:
            log.error("profiles_in_redis_invalid_kept_last_good", errors=exc.errors)
            return
        if document is None:
            return
        current = self._active.current
        if current is None or current.source is not ProfileSource.REDIS or current.document != document:
            self._active.swap(document, ProfileSource.REDIS)

    async def _run(self) -> None:
        delay = self._backoff_s[0]
        while True:
            pubsub = self._store.client.pubsub()
            try:
                await pubsub.subscribe(self._store.channel)
                await self.refresh()  # after subscribing: no version published in between is missed
                self.connected.set()
                if delay != self._backoff_s[0]:
                    log.info("profile_store_reconnected")
                delay = self._backoff_s[0]
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None:
                        await self.refresh()
            except (RedisError, OSError, UnavailableError) as exc:
                if self.connected.is_set() or delay == self._backoff_s[0]:
                    log.warning("profile_store_unreachable_keeping_last_good", error=str(exc))
                self.connected.clear()
            finally:
                try:
                    await pubsub.aclose()
                except (RedisError, OSError):
                    pass
            await asyncio.sleep(delay)
            delay = min(self._backoff_s[1], delay * 2)
