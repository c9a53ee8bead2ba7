"""The currency every wallet holds. The ledger keeps accounts in any currency; the service opens
wallets, moves money and reads history in this one. Every context names it by this constant,
so that a second currency is a change made here and followed from its uses."""

from __future__ import annotations

WALLET_CURRENCY = "USD"
