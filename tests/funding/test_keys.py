"""Key rotation (funding.keys): every sealed record readable under the new key alone, each
ciphertext bound to its row."""

from __future__ import annotations

import uuid

import pytest

from billfold.funding.bank_accounts import account_number
from billfold.funding.cards import add_card, card_token
from billfold.funding.keys import rotate
from billfold.platform.crypto import DecryptionFailed, Sealed
from tests.world import World


async def test_key_rotation_keeps_every_record_readable_and_rows_bound(world: World) -> None:
    """After rotating to a new key every number and card token decrypts with the new key
    alone; a ciphertext copied onto another row does not decrypt there."""
    holder, first = await world.person_with_bank("4444333322221111")
    _, second = await world.person_with_bank("5555666677778888")
    funding = world.state.funding
    holder_id = holder.id
    token = (await world.state.cards.tokenize(holder_id, "4242424242424242", 12, 2030, "123"))[
        "token"
    ]
    card = await add_card(world.state.pool, funding.keys, world.state.cards, holder_id, token)
    funding.keys = funding.keys.with_active("rotated", b"\x07" * 32)
    result = await rotate(funding)
    assert result.remaining == 0 and result.rewrapped >= 3
    funding.keys = funding.keys.only("rotated")
    assert await account_number(funding, uuid.UUID(first)) == "4444333322221111"
    assert await account_number(funding, uuid.UUID(second)) == "5555666677778888"
    card_row = await world.state.pool.fetchrow(
        "SELECT * FROM cards WHERE id = $1", uuid.UUID(card["card_id"])
    )
    assert (card_row["key_id"], card_token(funding.keys, card_row)) == ("rotated", token)
    row = await world.state.pool.fetchrow(
        "SELECT account_number_enc, account_number_dek, key_id FROM bank_accounts WHERE id = $1",
        uuid.UUID(first),
    )
    copied = Sealed(row["account_number_enc"], row["account_number_dek"], row["key_id"])
    with pytest.raises(DecryptionFailed):
        funding.keys.open(copied, f"bank_accounts.account_number:{second}")
