"""How long Go's gzip (compress/gzip at BestCompression, Go 1.22) makes a payload, without Go.

Butane, and Matchbox translating Butane, embed a file gzip'd only when that data URL is the
shortest; the length that decides is Go's. zlib's gzip (Python's) picks other matches and Huffman
codes, so its length differs by a few bytes either way, and near a tie the choice would differ.
`size` follows Go's compressor step by step for one block (inputs under 16 KiB: one block of at
most 2^14 tokens): its lazy LZ77 with 4-byte hashes and a 4096-long chain, its length-limited
Huffman codes, its choice of stored/fixed/dynamic block, and the empty final stored block its
Close writes. Go 1.27 replaced this compressor; Matchbox v0.11.0 and Butane releases are built
with Go 1.22."""

from __future__ import annotations

from bisect import bisect_right
from functools import lru_cache

LIMIT = 1 << 14  # Go's maxFlateBlockTokens: below it, one block
WINDOW, MASK, HASH_SHIFT, HASH_MUL = 1 << 15, (1 << 15) - 1, 32 - 17, 0x1E35A7BD
MAX_MATCH, MIN_MATCH, GOOD, LAZY, NICE, CHAIN = 258, 4, 32, 258, 258, 4096
GZIP_FRAME = 10 + 8  # header and trailer

LENGTH_BASE = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160,
               192, 224, 255]
LENGTH_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
OFFSET_BASE = [0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048,
               3072, 4096, 6144, 8192, 12288, 16384, 24576]
OFFSET_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
CODEGEN_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
FIXED_LITERAL = [8] * 144 + [9] * 112 + [7] * 24 + [8] * 6
FIXED_OFFSET = [5] * 30


@lru_cache(maxsize=4096)
def size(data: bytes) -> int | None:
    """Bytes Go's gzip.NewWriterLevel(w, BestCompression) writes for `data`; None at or over LIMIT."""
    if len(data) >= LIMIT:
        return None
    tokens = _tokens(data)
    bits = _block_bits(tokens, len(data)) if tokens else 0
    return GZIP_FRAME + (bits + 3 + 7) // 8 + 4  # Close: an empty final stored block, byte-aligned


class _Chains:
    """Go's hashHead/hashPrev: for each position, the previous one with the same 4-byte hash."""

    def __init__(self, data: bytes):
        self.data, self.head, self.prev = data, {}, [0] * WINDOW
        self.max_insert = len(data) - (MIN_MATCH - 1)

    def insert(self, i: int) -> int:
        h = ((int.from_bytes(self.data[i:i + 4], "big") * HASH_MUL) & 0xFFFFFFFF) >> HASH_SHIFT
        chain = self.head.get(h, 0)
        self.prev[i & MASK] = chain
        self.head[h] = i + 1  # Go's hashOffset starts at 1: 0 means "no entry"
        return chain


def _tokens(data: bytes) -> list[tuple[int, int] | int]:
    """Go's deflate() at level 9 over the whole input: literals (int) and (length, offset) pairs."""
    n = len(data)
    chains = _Chains(data)
    tokens: list[tuple[int, int] | int] = []
    index, length, offset, byte_available = 0, MIN_MATCH - 1, 0, False
    chain_head = -1  # past the last 4-byte hash it keeps the previous position's chain, as Go does
    while index < n:
        if index < chains.max_insert:
            chain_head = chains.insert(index)
        prev_length, prev_offset = length, offset
        length, offset = MIN_MATCH - 1, 0
        if chain_head - 1 >= max(index - WINDOW, 0) and n - index > prev_length and prev_length < LAZY:
            length, offset = _find_match(data, chains.prev, index, chain_head - 1, n - index) or (length, offset)
        if prev_length >= MIN_MATCH and length <= prev_length:
            tokens.append((prev_length, prev_offset))
            end = index + prev_length - 1
            for i in range(index + 1, min(end, chains.max_insert)):
                chains.insert(i)
            index, byte_available, length = end, False, MIN_MATCH - 1
        else:
            if byte_available:
                tokens.append(data[index - 1])
            index += 1
            byte_available = True
    if byte_available:
        tokens.append(data[n - 1])
    return tokens


def _find_match(data: bytes, prev: list[int], pos: int, candidate: int, lookahead: int) -> tuple[int, int] | None:
    look = min(MAX_MATCH, lookahead)
    nice = min(look, NICE)
    tries, length, best = CHAIN, MIN_MATCH - 1, None
    w_end = data[pos + length]
    min_index = pos - WINDOW
    i = candidate
    while tries > 0:
        if data[i + length] == w_end:
            m = _match_len(data, i, pos, look)
            if m > length and (m > MIN_MATCH or pos - i <= 4096):
                length, best = m, (m, pos - i)
                if m >= nice:
                    break
                w_end = data[pos + m]
        if i == min_index:
            break
        i = prev[i & MASK] - 1
        if i < min_index or i < 0:
            break
        tries -= 1
    return best


def _match_len(data: bytes, a: int, b: int, limit: int) -> int:
    for k in range(limit):
        if data[a + k] != data[b + k]:
            return k
    return limit


def _block_bits(tokens: list, input_len: int) -> int:
    """Bits of the one block Go's writeBlock emits: the smallest of stored, fixed and dynamic."""
    lit = [0] * 286
    off = [0] * 30
    extra = 0
    for t in tokens:
        if isinstance(t, int):
            lit[t] += 1
            continue
        length, distance = t
        lc = bisect_right(LENGTH_BASE, length - 3) - 1
        oc = bisect_right(OFFSET_BASE, distance - 1) - 1
        lit[257 + lc] += 1
        off[oc] += 1
        extra += LENGTH_EXTRA[lc] + OFFSET_EXTRA[oc]
    lit[256] += 1  # end of block
    num_lit = _used(lit)
    num_off = _used(off)
    no_matches = num_off == 0
    if no_matches:  # Go counts one offset code it never writes
        off[0], num_off = 1, 1
    lit_len, off_len = _code_lengths(lit, 15), _code_lengths(off, 15)
    codegen, cg_freq = _codegen(lit_len[:num_lit] + off_len[:num_off])
    cg_len = _code_lengths(cg_freq, 7)
    num_codegens = 19
    while num_codegens > 4 and cg_freq[CODEGEN_ORDER[num_codegens - 1]] == 0:
        num_codegens -= 1
    header = (3 + 5 + 5 + 4 + 3 * num_codegens + sum(f * cg_len[i] for i, f in enumerate(cg_freq))
              + cg_freq[16] * 2 + cg_freq[17] * 3 + cg_freq[18] * 7)
    fixed = 3 + _cost(lit, FIXED_LITERAL) + _cost(off, FIXED_OFFSET) + extra
    dynamic = header + _cost(lit, lit_len) + _cost(off, off_len) + extra
    stored = (input_len + 5) * 8
    if dynamic < fixed:
        chosen, unwritten = dynamic, off_len[0] if no_matches else 0
    else:
        chosen, unwritten = fixed, FIXED_OFFSET[0] if no_matches else 0
    if stored < chosen:
        return stored
    return chosen - unwritten


def _used(freq: list[int]) -> int:
    """How many leading entries matter: up to the last with a non-zero count."""
    n = len(freq)
    while n and not freq[n - 1]:
        n -= 1
    return n


def _cost(freq: list[int], lengths: list[int]) -> int:
    return sum(f * lengths[i] for i, f in enumerate(freq) if f)


def _codegen(lengths: list[int]) -> tuple[list[int], list[int]]:
    """Go's generateCodegen: run-length coding of the code lengths, and each codegen symbol's count."""
    freq = [0] * 19
    out: list[int] = []
    lengths = [*lengths, 255]
    size, count = lengths[0], 1
    i = 1
    while size != 255:
        nxt = lengths[i]
        i += 1
        if nxt == size:
            count += 1
            continue
        if size != 0:
            out.append(size)
            freq[size] += 1
            count -= 1
            while count >= 3:
                k = min(6, count)
                out += [16, k - 3]
                freq[16] += 1
                count -= k
        else:
            while count >= 11:
                k = min(138, count)
                out += [18, k - 11]
                freq[18] += 1
                count -= k
            if count >= 3:
                out += [17, count - 3]
                freq[17] += 1
                count = 0
        out += [size] * count
        freq[size] += count
        size, count = nxt, 1
    return out, freq


def _code_lengths(freq: list[int], max_bits: int) -> list[int]:
    """Go's huffmanEncoder.generate: length-limited code lengths (its bitCounts), symbols sorted by
    frequency then value, the most frequent getting the shortest codes."""
    lengths = [0] * len(freq)
    nodes = sorted(((f, s) for s, f in enumerate(freq) if f), key=lambda fs: (fs[0], fs[1]))
    if len(nodes) <= 2:
        for _, s in nodes:
            lengths[s] = 1
        return lengths
    counts = _bit_counts([f for f, _ in nodes], max_bits)
    remaining = nodes
    for bits, count in enumerate(counts):
        if bits == 0 or count == 0:
            continue
        for _, s in remaining[len(remaining) - count:]:
            lengths[s] = bits
        remaining = remaining[:len(remaining) - count]
    return lengths


def _bit_counts(freqs: list[int], max_bits: int) -> list[int]:
    """Go's huffmanEncoder.bitCounts (boundary package-merge) over ascending frequencies."""
    big = 2**31 - 1
    n = len(freqs)
    f = [*freqs, big]
    max_bits = min(max_bits, n - 1)
    levels = [dict(level=0, last=0, next_char=0, next_pair=0, needed=0) for _ in range(max_bits + 2)]
    leaf = [[0] * (max_bits + 2) for _ in range(max_bits + 2)]
    for level in range(1, max_bits + 1):
        levels[level] = dict(level=level, last=f[1], next_char=f[2], next_pair=f[0] + f[1], needed=0)
        leaf[level][level] = 2
        if level == 1:
            levels[level]["next_pair"] = big
    levels[max_bits]["needed"] = 2 * n - 4
    level = max_bits
    while True:
        lv = levels[level]
        if lv["next_pair"] == big and lv["next_char"] == big:
            lv["needed"] = 0
            levels[level + 1]["next_pair"] = big
            level += 1
            continue
        prev_freq = lv["last"]
        if lv["next_char"] < lv["next_pair"]:
            count = leaf[level][level] + 1
            lv["last"] = lv["next_char"]
            leaf[level][level] = count
            lv["next_char"] = f[count]
        else:
            lv["last"] = lv["next_pair"]
            leaf[level][:level] = leaf[level - 1][:level]
            levels[lv["level"] - 1]["needed"] = 2
        lv["needed"] -= 1
        if lv["needed"] == 0:
            if lv["level"] == max_bits:
                break
            levels[lv["level"] + 1]["next_pair"] = prev_freq + lv["last"]
            level += 1
        else:
            while levels[level - 1]["needed"] > 0:
                level -= 1
    counts = [0] * (max_bits + 1)
    bits = 1
    for level in range(max_bits, 0, -1):
        counts[bits] = leaf[max_bits][level] - leaf[max_bits][level - 1]
        bits += 1
    return counts
