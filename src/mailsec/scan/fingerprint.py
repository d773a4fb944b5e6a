"""Message fingerprints: `edf_hash`, a 64-bit simhash of the normalised text (similar messages share it or differ in
few bits), and `htmltext_structure_hash`, a hash of the HTML tag skeleton (or, for plain text, of the line shape), so
that one campaign with changing names and links still falls together."""

from __future__ import annotations

import hashlib
import itertools
import zlib
from collections.abc import Sequence

import numpy as np

from mailsec.scan.features import MessageText, normalised_words

MAX_TOKENS = 3000
_SEED = 0x9E3779B9


def simhash(tokens: Sequence[str]) -> int:
    """64-bit simhash of word bigrams (unigrams for very short texts).

    Each gram's 64-bit hash is crc32 (high word) and crc32 seeded with 0x9E3779B9 (low word) of its UTF-8 bytes;
    the loops run in C (`map`) and the bit votes are counted on the unpacked bytes."""
    if not tokens:
        return 0
    encoded = list(map(str.encode, tokens[:MAX_TOKENS]))
    grams = list(map(b" ".join, itertools.pairwise(encoded))) if len(encoded) > 3 else encoded
    n = len(grams)
    hashes = np.empty(2 * n, dtype="<u4")  # gram i's 64-bit hash, little-endian: low word, then high word
    hashes[0::2] = np.fromiter(map(zlib.crc32, grams, itertools.repeat(_SEED)), dtype=np.uint32, count=n)
    hashes[1::2] = np.fromiter(map(zlib.crc32, grams), dtype=np.uint32, count=n)
    bits = np.unpackbits(hashes.view(np.uint8).reshape(n, 8), axis=1, bitorder="little")  # column j = bit j
    ones = np.ones(n, dtype=np.float32) @ bits  # the column sums: exact (n <= MAX_TOKENS), 10x faster than .sum
    return int(np.packbits(ones * 2 > n, bitorder="little").view("<u8")[0])  # bit j set where most grams have it


def edf_hash(mt: MessageText) -> str:
    """Hex simhash of subject and body, after the same normalisation the classifier sees.

    Normalised apart (the classifier has just normalised the same strings: `normalise` memoises them); the words
    are those of `normalise(f"{subject} {body}")`, since no mask crosses the space between them."""
    tokens = normalised_words(mt.subject) + normalised_words(mt.body)
    return f"{simhash(tokens):016x}"


def hamming(a: str, b: str) -> int:
    """Bits that differ between two `edf_hash` values."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _text_shape(body: str) -> str:
    shape: list[str] = []
    for line in body.splitlines()[:400]:
        stripped = line.strip()
        kind = "b" if not stripped else "q" if stripped.startswith(">") else "u" if "://" in stripped else "t"
        if not shape or shape[-1] != kind:
            shape.append(kind)
    return "".join(shape)


def htmltext_structure_hash(mt: MessageText, text_body: str = "") -> str:
    """Hash of the tag skeleton (runs of one tag collapsed) when there is HTML, else of the plain text's line shape."""
    if mt.html_tags:
        skeleton: list[str] = []
        for tag in mt.html_tags:
            if not skeleton or skeleton[-1] != tag:
                skeleton.append(tag)
        material = "html:" + ">".join(skeleton)
    else:
        material = "text:" + _text_shape(text_body)
    return hashlib.blake2b(material.encode(), digest_size=16).hexdigest()
