"""What makes two messages "the same campaign", as keys a store can index: the text fingerprint (`edf_hash`), the
HTML/text structure hash, and a MinHash signature over word 3-shingles cut into LSH bands, so that a near-copy with
changed names, amounts and links shares at least one band with the original (candidates found by index, never by
scanning) and its estimated Jaccard similarity confirms it. Pure: computed from the parsed message alone."""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

import numpy as np

from mailsec.model import ParsedMessage
from mailsec.scan.features import MessageText, extract_text, normalised_words
from mailsec.scan.fingerprint import edf_hash, htmltext_structure_hash

PERMUTATIONS = 64
BANDS = 16
ROWS = PERMUTATIONS // BANDS
SHINGLE = 3
MIN_SHINGLES = 8
"""A shorter text says too little to call another message its copy."""
MAX_SHINGLE_TOKENS = 5000
NEAR_DUPLICATE = 0.6
"""Estimated Jaccard similarity at which a message is a near-copy on its text alone."""
SAME_STRUCTURE = 0.3
"""With the same structure hash, this much shared text is enough."""
EMPTY_EDF = "0000000000000000"

_PRIME = (1 << 61) - 1
_rng = np.random.default_rng(0x5EED_CA4)
_A = _rng.integers(1, 1 << 32, size=PERMUTATIONS, dtype=np.uint64)  # a*x+b stays below 2^64: no wrap-around
_B = _rng.integers(0, 1 << 32, size=PERMUTATIONS, dtype=np.uint64)


@dataclass(frozen=True)
class CampaignKeys:
    edf_hash: str
    structure_hash: str
    signature: bytes
    """PERMUTATIONS little-endian uint32 minima; empty when the text is too short."""

    @property
    def bands(self) -> list[int]:
        return bands(self.signature)

    @property
    def edf_indexable(self) -> bool:
        return bool(self.signature) and self.edf_hash != EMPTY_EDF


def shingles(tokens: tuple[str, ...] | list[str]) -> set[bytes]:
    words = [t.encode() for t in tokens[:MAX_SHINGLE_TOKENS]]
    return {b" ".join(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


def signature(tokens: tuple[str, ...] | list[str]) -> bytes:
    """MinHash of the word 3-shingles: for each of PERMUTATIONS hash functions (a*x+b mod 2^61-1 over crc32), the
    minimum over the shingles."""
    grams = shingles(tokens)
    if len(grams) < MIN_SHINGLES:
        return b""
    x = np.fromiter(map(zlib.crc32, grams), dtype=np.uint64, count=len(grams))
    minima = np.empty(PERMUTATIONS, dtype="<u4")
    for start in range(0, PERMUTATIONS, 16):  # 16 permutations at a time bounds the temporary matrix
        a, b = _A[start : start + 16, None], _B[start : start + 16, None]
        h = ((a * x[None, :] + b) % np.uint64(_PRIME)) & np.uint64(0xFFFFFFFF)
        minima[start : start + 16] = h.min(axis=1).astype("<u4")
    return minima.tobytes()


def bands(sig: bytes) -> list[int]:
    """One signed 63-bit key per band (band number included, so equal rows in different bands never collide)."""
    if not sig:
        return []
    width = ROWS * 4
    out = []
    for i in range(BANDS):
        digest = hashlib.blake2b(bytes([i]) + sig[i * width : (i + 1) * width], digest_size=8).digest()
        out.append(int.from_bytes(digest, "little") >> 1)
    return out


def similarity(a: bytes, b: bytes) -> float:
    """Estimated Jaccard similarity of the two texts' shingle sets: the share of equal MinHash rows."""
    if not a or not b or len(a) != len(b):
        return 0.0
    return float(np.mean(np.frombuffer(a, dtype="<u4") == np.frombuffer(b, dtype="<u4")))


def keys_of_text(mt: MessageText, text_body: str) -> CampaignKeys:
    tokens = [*normalised_words(mt.subject), *normalised_words(mt.body)]
    return CampaignKeys(
        edf_hash=edf_hash(mt),
        structure_hash=htmltext_structure_hash(mt, text_body),
        signature=signature(tokens),
    )


def campaign_keys(parsed: ParsedMessage) -> CampaignKeys:
    return keys_of_text(extract_text(parsed), parsed.text_body or "")


def same_campaign(a: CampaignKeys, b: CampaignKeys) -> str | None:
    """How `a` matches `b` (a sentence for a finding's reason), or None."""
    sim = similarity(a.signature, b.signature)
    if a.edf_indexable and a.edf_hash == b.edf_hash:
        return "the same text fingerprint (edf_hash)"
    if sim >= NEAR_DUPLICATE:
        return f"near-identical text ({sim:.0%} of its word shingles in common)"
    if sim >= SAME_STRUCTURE and a.structure_hash == b.structure_hash:
        return f"the same HTML/text structure and similar text ({sim:.0%} of its word shingles in common)"
    return None


__all__ = ["CampaignKeys", "campaign_keys", "same_campaign", "similarity"]
