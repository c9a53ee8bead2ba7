"""A password change: proved with the current password (wrong ones count as failed logins
do), the new one checked as sign-up's, stored as an Argon2 hash."""

from __future__ import annotations

import pytest

from billfold.platform.errors import ValidationFailed
from billfold.platform.security import Unauthenticated
from billfold.wallet.users import (
    LoginLocked,
    PasswordChangedMeanwhile,
    WrongPassword,
    authenticate,
    check_change_password,
    do_change_password,
    login_lock_key,
)
from tests.world import PASSWORD, World

NEW = "a brand new passphrase"


async def test_a_changed_password_logs_in_and_the_old_one_does_not(world: World) -> None:
    """The new password signs in; the old one is refused; the stored hash is Argon2."""
    s = world.state
    user = await world.person()
    change = await check_change_password(s.pool, s.redis, s.settings, user.id, PASSWORD, NEW)
    await do_change_password(s.pool, change)
    stored = await s.pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user.id)
    assert stored.startswith("$argon2id$") and NEW not in stored
    assert (await authenticate(s.pool, s.redis, s.settings, user.username, NEW)).id == user.id
    with pytest.raises(Unauthenticated):
        await authenticate(s.pool, s.redis, s.settings, user.username, PASSWORD)


async def test_a_short_new_password_and_a_wrong_current_one_are_refused(world: World) -> None:
    """The new password as sign-up's (named as new_password); a wrong current one is refused
    and counted against the person's logins; nothing stored either time."""
    s = world.state
    user = await world.person()
    before = await s.pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user.id)
    with pytest.raises(ValidationFailed) as short:
        await check_change_password(s.pool, s.redis, s.settings, user.id, PASSWORD, "short")
    assert short.value.fields["field"] == "new_password"
    with pytest.raises(WrongPassword) as wrong:
        await check_change_password(s.pool, s.redis, s.settings, user.id, "not it at all", NEW)
    assert wrong.value.fields["field"] == "current_password"
    assert "not it" not in wrong.value.detail
    assert await s.redis.get(login_lock_key(user.id)) == "1"
    after = await s.pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user.id)
    assert after == before


async def test_wrong_current_passwords_lock_logins_too(world: World) -> None:
    """At login_max_failures wrong current passwords in a row, the login is locked as well."""
    s = world.state
    user = await world.person()
    for _ in range(s.settings.login_max_failures):
        with pytest.raises(WrongPassword):
            await check_change_password(s.pool, s.redis, s.settings, user.id, "wrong guess", NEW)
    with pytest.raises(LoginLocked):
        await authenticate(s.pool, s.redis, s.settings, user.username, PASSWORD)
    await s.redis.delete(login_lock_key(user.id))


async def test_of_two_changes_proved_with_one_password_the_second_is_refused(
    world: World,
) -> None:
    """Two changes checked against the same password: the first stores, the second does not."""
    s = world.state
    user = await world.person()
    first = await check_change_password(s.pool, s.redis, s.settings, user.id, PASSWORD, NEW)
    second = await check_change_password(s.pool, s.redis, s.settings, user.id, PASSWORD, NEW + "!")
    await do_change_password(s.pool, first)
    with pytest.raises(PasswordChangedMeanwhile):
        await do_change_password(s.pool, second)
    assert (await authenticate(s.pool, s.redis, s.settings, user.username, NEW)).id == user.id
