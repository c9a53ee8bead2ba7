"""Sensitive fields encrypted at rest, and blind indexes to find them without decrypting.

Envelope encryption with AES-256-GCM: each value gets its own random data key, and the data key
is stored wrapped (encrypted) by a key-encryption key from the environment, named by a key id
stored beside the value. Both encryptions take the value's context (table, column and row id)
as associated data, so a ciphertext copied onto another row fails to decrypt. Rotating to a new
key-encryption key re-wraps the small data keys and leaves the values' ciphertexts alone.

Keys: `BILLFOLD_DATA_KEYS` is a comma-separated list of `key_id:base64(32 bytes)`; the first one
encrypts, all of them decrypt. `BILLFOLD_BLIND_INDEX_KEY` (base64, 32 bytes) keys the HMAC of the
blind indexes. When unset, each is made once and kept in the data dir, as the token key is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from billfold.config import Settings
from billfold.platform.security import kept_secret

KEY_BYTES = 32
NONCE_BYTES = 12
FORMAT = b"\x01"  # the layout of a sealed value, should it ever change
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")


class CryptoConfigError(ValueError):
    """The configured keys are malformed. The message names the key id, never a key."""


class DecryptionFailed(Exception):
    """A value did not decrypt: wrong row, wrong key, or tampered with."""


@dataclass(frozen=True, slots=True)
class Sealed:
    ciphertext: bytes  # FORMAT + nonce + AES-GCM(data key, value)
    wrapped_key: bytes  # nonce + AES-GCM(key-encryption key, data key)
    key_id: str


class KeyRing:
    def __init__(self, keys: dict[str, bytes], active: str, index_key: bytes) -> None:
        if active not in keys:
            raise CryptoConfigError(f"active key id '{active}' is not among the keys")
        for key_id, key in [*keys.items(), ("blind index", index_key)]:
            if len(key) != KEY_BYTES:
                raise CryptoConfigError(f"key '{key_id}' must be {KEY_BYTES} bytes")
        self._keys = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.active = active
        self._index_key = index_key

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        data_keys = settings.data_keys or kept_secret(settings, "data_keys", new_data_keys)
        index_key = settings.blind_index_key or kept_secret(
            settings, "blind_index_key", lambda: base64.b64encode(secrets.token_bytes(32)).decode()
        )
        keys, active = parse_data_keys(data_keys)
        return cls(keys, active, _b64(index_key, "blind index"))

    def with_active(self, key_id: str, key: bytes) -> KeyRing:
        """This ring with `key` added as the key that encrypts (what a rotation starts from)."""
        ring = KeyRing({key_id: key}, key_id, self._index_key)
        ring._keys.update({k: v for k, v in self._keys.items() if k != key_id})
        return ring

    def only(self, key_id: str) -> KeyRing:
        """This ring with one key left (what remains once a rotation is done)."""
        ring = KeyRing.__new__(KeyRing)
        ring._keys, ring.active, ring._index_key = (
            {key_id: self._keys[key_id]},
            key_id,
            self._index_key,
        )
        return ring

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def seal(self, value: str, context: str) -> Sealed:
        data_key = AESGCM.generate_key(bit_length=256)
        aad = context.encode()
        nonce = secrets.token_bytes(NONCE_BYTES)
        ciphertext = FORMAT + nonce + AESGCM(data_key).encrypt(nonce, value.encode(), aad)
        return Sealed(ciphertext, self._wrap(data_key, self.active, aad), self.active)

    def open(self, sealed: Sealed, context: str) -> str:
        aad = context.encode()
        data_key = self._unwrap(sealed, aad)
        body = sealed.ciphertext
        if body[:1] != FORMAT or len(body) < 1 + NONCE_BYTES:
            raise DecryptionFailed(f"ciphertext of {context} has an unknown layout")
        try:
            value = AESGCM(data_key).decrypt(
                body[1 : 1 + NONCE_BYTES], body[1 + NONCE_BYTES :], aad
            )
        except InvalidTag:
            raise DecryptionFailed(f"ciphertext of {context} does not belong to it") from None
        return value.decode()

    def rewrap(self, sealed: Sealed, context: str) -> Sealed:
        """The same value's data key wrapped by the active key instead."""
        aad = context.encode()
        data_key = self._unwrap(sealed, aad)
        return Sealed(sealed.ciphertext, self._wrap(data_key, self.active, aad), self.active)

    def blind_index(self, value: str, purpose: str) -> bytes:
        """A keyed hash: equal values give equal indexes, and the index reveals nothing without
        the key (a plain hash of a bank account number is brute-forced in minutes)."""
        message = purpose.encode() + b"\x00" + value.encode()
        return hmac.new(self._index_key, message, hashlib.sha256).digest()

    def _wrap(self, data_key: bytes, key_id: str, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._keys[key_id].encrypt(nonce, data_key, aad + b"|" + key_id.encode())

    def _unwrap(self, sealed: Sealed, aad: bytes) -> bytes:
        kek = self._keys.get(sealed.key_id)
        if kek is None:
            raise DecryptionFailed(f"key '{sealed.key_id}' is not configured")
        wrapped = sealed.wrapped_key
        try:
            return kek.decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad + b"|" + sealed.key_id.encode()
            )
        except InvalidTag:
            raise DecryptionFailed("the data key does not belong to this value") from None


def new_data_keys() -> str:
    return f"k{secrets.token_hex(4)}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


def parse_data_keys(text: str) -> tuple[dict[str, bytes], str]:
    """`id:base64,id:base64,...` -> the keys and the first (active) id."""
    keys: dict[str, bytes] = {}
    for item in text.split(","):
        key_id, sep, encoded = item.strip().partition(":")
        if not sep or not _KEY_ID.fullmatch(key_id):
            raise CryptoConfigError(
                f"each data key must be written 'key_id:base64'; got an item starting "
                f"'{key_id[:32]}'"
            )
        if key_id in keys:
            raise CryptoConfigError(f"key id '{key_id}' appears twice")
        keys[key_id] = _b64(encoded, key_id)
    return keys, next(iter(keys))


def _b64(text: str, name: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        raise CryptoConfigError(f"key '{name}' is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise CryptoConfigError(f"key '{name}' must be {KEY_BYTES} bytes, not {len(key)}")
    return key
