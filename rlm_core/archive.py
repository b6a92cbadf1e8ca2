"""ZIP members read within a byte limit counted on what decompression actually produces.

A member's declared size proves nothing: a 6 KB BZIP2 member that declares 1 KB can inflate
without end, and zipfile's BZIP2 and LZMA readers inflate a whole compressed chunk in one call.
So members are decompressed here, in bounded steps, for every method ZIP files use (stored,
DEFLATE, BZIP2, LZMA), and the checksum is checked at the end.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

READ_CHUNK = 1 << 20
_LOCAL_HEADER = struct.Struct("<4s22xHH")
"""Signature, then (after 22 bytes we skip) the lengths of the name and the extra field."""


class TooLarge(Exception):
    """The member produced more bytes than it was allowed."""


class Unreadable(Exception):
    """The member cannot be unpacked (damaged, encrypted, or a method ZIP readers rarely use)."""


def member_bytes(fp: BinaryIO, info: zipfile.ZipInfo, limit: int, keep: bool = True) -> bytearray:
    """The member's content; TooLarge as soon as it would pass `limit` bytes, Unreadable as soon
    as it passes its own declared size. With `keep` false nothing is kept (the content is only
    measured and checked)."""
    if info.flag_bits & 0x1:
        raise Unreadable("encrypted; it was not opened")
    cap = min(limit, info.file_size)
    out, produced, crc = bytearray(), 0, 0
    inflate = _inflater(info.compress_type, info.file_size)
    try:
        for chunk in _raw_chunks(fp, info):
            for piece in inflate(chunk, cap - produced + 1):
                produced += len(piece)
                if produced > cap:
                    if cap < info.file_size:
                        raise TooLarge(f"unpacks to more than {limit:,} bytes")
                    raise Unreadable(f"damaged: it unpacks to more than the {cap:,} it declares")
                crc = zlib.crc32(piece, crc)
                if keep:
                    out += piece
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise Unreadable(f"damaged: {exc}") from exc
    if crc != info.CRC or produced != info.file_size:
        raise Unreadable("damaged: its content does not match its checksum or declared size")
    return out


def _raw_chunks(fp: BinaryIO, info: zipfile.ZipInfo) -> Iterator[bytes]:
    fp.seek(info.header_offset)
    head = fp.read(_LOCAL_HEADER.size)
    if len(head) < _LOCAL_HEADER.size:
        raise Unreadable("damaged: truncated header")
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(head)
    if signature != b"PK\x03\x04":
        raise Unreadable("damaged: bad header")
    fp.seek(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)
    left = info.compress_size
    while left > 0:
        chunk = fp.read(min(READ_CHUNK, left))
        if not chunk:
            raise Unreadable("damaged: the archive ends inside it")
        left -= len(chunk)
        yield chunk


Inflate = Any
"""A function (compressed chunk, most bytes to produce at once) -> iterator of pieces."""


def _inflater(method: int, declared: int) -> Inflate:
    if method == zipfile.ZIP_STORED:
        return lambda chunk, room: iter((chunk,))
    if method == zipfile.ZIP_DEFLATED:
        return _deflate(zlib.decompressobj(-zlib.MAX_WBITS))
    if method == zipfile.ZIP_BZIP2:
        return _buffered(bz2.BZ2Decompressor())
    if method == zipfile.ZIP_LZMA:
        return _lzma(declared)
    raise Unreadable(f"compressed with method {method}, which is not supported")


def _deflate(dec: Any) -> Inflate:
    def inflate(chunk: bytes, room: int) -> Iterator[bytes]:
        data = chunk
        while data and not dec.eof:
            yield dec.decompress(data, room)
            data = dec.unconsumed_tail  # input left over because the output was capped

    return inflate


def _buffered(dec: Any) -> Inflate:
    """bz2 and lzma decompressors keep left-over input themselves: drain them in capped steps."""

    def inflate(chunk: bytes, room: int) -> Iterator[bytes]:
        if dec.eof:
            return
        yield dec.decompress(chunk, room)
        while not dec.eof and not dec.needs_input:
            yield dec.decompress(b"", room)

    return inflate


def _lzma(declared: int) -> Inflate:
    """ZIP's LZMA: a 4-byte header (version, size of the properties), the LZMA1 properties, then
    the raw stream, as zipfile reads it. The header is in the first chunk (1 MB)."""
    rest: list[Inflate] = []

    def inflate(chunk: bytes, room: int) -> Iterator[bytes]:
        if not rest:
            size = struct.unpack("<H", chunk[2:4])[0] if len(chunk) >= 4 else len(chunk)
            if len(chunk) < 4 + size:
                raise Unreadable("damaged: truncated LZMA header")
            # the same private helper zipfile uses to read LZMA members
            props = lzma._decode_filter_properties(lzma.FILTER_LZMA1, chunk[4 : 4 + size])  # type: ignore[attr-defined]
            # The dictionary is allocated up front at the size the file names (up to 4 GB); no
            # more than the member's declared size is ever needed, and more is never produced.
            props["dict_size"] = max(4096, min(props["dict_size"], declared))
            rest.append(_buffered(lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[props])))
            chunk = chunk[4 + size :]
        yield from rest[0](chunk, room)

    return inflate
