"""MP3 streams read by their frame headers: whether the file states its length (a Xing, Info or
VBRI frame) and whether its last frame is whole. libsndfile estimates the length of an MP3
without such a frame from its size and first bitrate, which an ID3 tag or a variable bitrate
throws off by percents: that estimate is never taken for a truncation."""

from __future__ import annotations

from birdtpu import fs

# frame headers: bitrates (kbit/s) by (MPEG-1?, layer) and sample rates by version bits
_MPEG_KBPS = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_header(data: bytes, pos: int) -> int:
    """The length in bytes of the MPEG audio frame whose header is at `pos`; 0 where none is."""
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
        return 0
    version, layer = (data[pos + 1] >> 3) & 3, 4 - ((data[pos + 1] >> 1) & 3)
    index, rate_index, pad = data[pos + 2] >> 4, (data[pos + 2] >> 2) & 3, (data[pos + 2] >> 1) & 1
    if version == 1 or layer == 4 or index in (0, 15) or rate_index == 3:  # reserved or free format
        return 0
    mpeg1 = version == 3
    kbps = _MPEG_KBPS[(mpeg1, layer if mpeg1 or layer == 1 else 2)][index]
    rate = _MPEG_RATES[version][rate_index]
    if layer == 1:
        return (12000 * kbps // rate + pad) * 4
    return (144000 if mpeg1 or layer == 2 else 72000) * kbps // rate + pad


def _mpeg_frames(data: bytes) -> tuple[bool, str | None] | None:
    """For MP3 bytes (after any ID3v2 tags): (whether the first frame holds a frame count (Xing,
    Info or VBRI), why the stream is cut short or None); None for other data."""
    pos = 0
    while data[pos : pos + 3] == b"ID3" and len(data) >= pos + 10:  # ID3v2: syncsafe size
        size = sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(data[pos + 6 : pos + 10]))
        pos += 10 + size + (10 if data[pos + 5] & 0x10 else 0)
    while pos < len(data) and data[pos] == 0:  # padding after a tag
        pos += 1
    first = _mpeg_header(data, pos)
    if not first:
        return None
    counted = any(tag in data[pos : pos + min(first, 64)] for tag in (b"Xing", b"Info", b"VBRI"))
    while length := _mpeg_header(data, pos):  # stops at a trailing tag (ID3v1, APE) or the end
        if pos + length > len(data):
            return (
                counted,
                f"truncated (last MPEG frame ends at byte {pos + length} of {len(data)})",
            )
        pos += length
    return counted, None


def read_mpeg(fh) -> tuple[bool, str | None] | None:
    """`_mpeg_frames` of an open binary file that starts like MP3 (an ID3v2 tag or a frame sync); None
    for other files, without reading them whole."""
    fh.seek(0)
    head = fh.read(3)
    if head != b"ID3" and not (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return None
    fh.seek(0)
    return _mpeg_frames(fh.read())


def counts_frames(source) -> bool:
    """Whether the header of `source` (a path or a binary file object) gives its length reliably:
    every format but an MP3 without a Xing, Info or VBRI frame, whose length libsndfile estimates
    from its size and first bitrate (an ID3 tag or a variable bitrate throws it off by percents)."""
    fh = fs.open(source) if isinstance(source, str) else source
    try:
        frames = read_mpeg(fh)
    finally:
        if isinstance(source, str):
            fh.close()
        else:
            fh.seek(0)
    return frames is None or frames[0]
