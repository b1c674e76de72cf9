"""The profile store against a real redis-server: atomic publish, live swap, outage and recovery."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from core.errors import AbortedError, UnavailableError
from core.profiles import ProfileDocument
from core.vocabulary import ProfileSource
from services.router.profile_store import ActiveProfiles, ProfileFollower, ProfileStore, connect
from tests.fixtures.redis import RedisServer
from tests.fixtures.waiting import await_until
from tests.router.helpers import document, pair_dict

V1 = document(pair_dict("model-a", "127.0.0.1:3001"))
V2 = document(pair_dict("model-a", "127.0.0.1:3001"), pair_dict("model-b", "127.0.0.1:3002"))


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[ProfileStore]:
    client = connect(redis_server.url)
    yield ProfileStore(client, prefix=f"test:{uuid.uuid4().hex}")
    await client.aclose()


async def test_publish_assigns_increasing_versions_and_read_validates(store: ProfileStore) -> None:
    assert await store.read() is None
    first = await store.publish(V1)
    second = await store.publish(V2)
    assert (first.version, second.version) == (1, 2)
    stored = await store.read()
    assert stored == second and stored.published_at is not None
    assert len(stored.pairs) == 2


async def test_expected_version_mismatch_aborts_and_changes_nothing(store: ProfileStore) -> None:
    await store.publish(V1)
    with pytest.raises(AbortedError, match="expected_version: 7 is stale, the current version is 1"):
        await store.publish(V2, expected_version=7)
    assert (await store.read()).version == 1
    assert (await store.publish(V2, expected_version=1)).version == 2


async def test_concurrent_publishes_with_the_same_expected_version_one_wins(store: ProfileStore) -> None:
    await store.publish(V1)
    results = await asyncio.gather(*(store.publish(V2, expected_version=1) for _ in range(5)),
                                   return_exceptions=True)
    assert sum(isinstance(r, ProfileDocument) for r in results) == 1
    assert all(isinstance(r, AbortedError) for r in results if not isinstance(r, ProfileDocument))
    assert (await store.read()).version == 2


async def test_an_invalid_document_in_redis_is_not_swapped_in(store: ProfileStore) -> None:
    active = ActiveProfiles()
    follower = ProfileFollower(store, active)
    await store.publish(V1)
    follower.start()
    try:
        await await_until(lambda: active.current is not None, 10.0, message="no document loaded")
        await store.client.set(store.document_key, '{"schema_version": 1, "pairs": []}')
        await store.client.publish(store.channel, "2")
        # Deliberate: the check is that nothing happens (the invalid document is never swapped in), and the
        # follower exposes no sign that it read and refused it, so it gets ample time for the pub/sub message.
        await asyncio.sleep(0.3)
        assert active.current.document.version == 1 and active.current.source is ProfileSource.REDIS
    finally:
        await follower.stop()


async def test_follower_swaps_new_versions_and_survives_a_redis_outage(redis_server: RedisServer,
                                                                       tmp_path) -> None:
    static_file = tmp_path / "profiles.json"
    static_file.write_text(V1.to_json())
    client = connect(redis_server.url)
    store = ProfileStore(client, prefix=f"test:{uuid.uuid4().hex}")
    active = ActiveProfiles()
    active.load_static_file(static_file)
    assert active.current.source is ProfileSource.STATIC_FILE
    swaps: list[int] = []
    active.on_change(lambda loaded: swaps.append(loaded.document.version))
    follower = ProfileFollower(store, active, reconnect_backoff_s=(0.05, 0.2))
    follower.start()
    try:
        await asyncio.wait_for(follower.connected.wait(), 5)
        assert active.current.source is ProfileSource.STATIC_FILE  # nothing in Redis yet: the seed stays
        await store.publish(V1)
        await await_until(lambda: active.current.source is ProfileSource.REDIS, 10.0,
                          message="the published document was not swapped in")
        await store.publish(V2)
        await await_until(lambda: active.current.document.version == 2, 10.0, message="no version 2")
        assert swaps == [1, 2]

        redis_server.kill()
        await await_until(lambda: not follower.connected.is_set(), 10.0, message="the outage went unnoticed")
        with pytest.raises(UnavailableError):
            await store.publish(V1)
        await asyncio.sleep(0.5)  # deliberate: an outage of several reconnect attempts; nothing may change
        assert active.current.document.version == 2 and len(active.current.document.pairs) == 2

        redis_server.start()  # comes back empty (no persistence): the last good version stays
        await asyncio.wait_for(follower.connected.wait(), 10)
        assert active.current.document.version == 2
        await store.publish(V1)  # version 1 of the new store, a different document: followed
        await await_until(lambda: len(active.current.document.pairs) == 1, 10.0,
                          message="the new store's document was not followed")
    finally:
        await follower.stop()
        await client.aclose()
        if redis_server.process is None or redis_server.process.poll() is not None:
            redis_server.start()
