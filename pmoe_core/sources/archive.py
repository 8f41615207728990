"""Reading one member of a raw-dataset zip with its sizes checked first.

`zipfile` trusts the sizes recorded in the archive: a corrupt compressed size makes it ask the OS for that many
bytes up front (a flipped bit gave a 1 GiB read buffer; 2^62 raises MemoryError), and a recorded inflated size
is all that bounds a decompression bomb. Both are checked against the archive and a per-caller limit before
anything is read, so a bad archive is a FormatError naming the member. The recorded size can lie low, and
`ZipFile.read` inflates up to 2 GiB in one call before it truncates to that size and checks the CRC, so the
member is inflated in pieces of CHUNK bytes and reading stops as soon as the bytes actually inflated pass the limit.

The last archive read stays open (one per process): opening a zip parses its whole central directory, ~0.1-0.3 s
for a Structured3D panorama zip of ~30k members, which would otherwise be paid for every member of every room.
It is reused only while the file's identity (inode, size, mtime) is unchanged, and only for files last modified
more than SETTLED_S ago: file times are coarse (a few ms), so a just-written archive rewritten in place at the
same size could otherwise look unchanged. Raw datasets are old files; freshly written test data is never cached.
"""

from __future__ import annotations

import io
import time
import zipfile
import zlib
from contextlib import nullcontext
from pathlib import Path

from pmoe_core.errors import FormatError, MissingFile

SETTLED_S = 2.0
CHUNK = 1 << 20  # bytes inflated per step: what a lying size header can cost beyond the limit
_OPEN: dict[tuple[str, int, int, int], zipfile.ZipFile] = {}  # at most one entry: the archive read last


def read_member(archive: Path, member: str, where: str, max_bytes: int) -> bytes:
    """The bytes of `member` (KeyError-free: MissingFile / FormatError naming `where`, i.e. "archive:member")."""
    try:
        zf, size, cached = _open(Path(archive))
        with nullcontext() if cached else zf:
            try:
                info = zf.getinfo(member)
            except KeyError:
                raise MissingFile("member not in the archive", where) from None
            if info.compress_size > size or info.header_offset > size:
                raise FormatError(f"zip member claims {info.compress_size} compressed bytes at offset "
                                  f"{info.header_offset} of a {size}-byte archive (corrupt archive)", where)
            if info.file_size > max_bytes:
                raise FormatError(f"zip member would inflate to {info.file_size} bytes, over the {max_bytes}-byte "
                                  "limit for this file (corrupt archive or a zip bomb)", where)
            return _inflate(zf, info, where, max_bytes)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error, NotImplementedError,
            ValueError) as err:
        close_archives()  # the handle may be in a bad state; the next read reopens
        raise FormatError(f"cannot read zip member ({type(err).__name__}: {err})", where) from None


def _inflate(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, max_bytes: int) -> bytes:
    """The member's bytes, inflated CHUNK at a time and refused once more than `max_bytes` came out."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        # zipfile inflates bzip2/LZMA without an output bound; the datasets' release zips use deflate.
        raise FormatError(f"zip member uses compression method {info.compress_type}; only stored and deflate "
                          "members are read", where)
    out = io.BytesIO()
    with zf.open(info) as member:
        while piece := member.read(CHUNK):
            if out.tell() + len(piece) > max_bytes:
                raise FormatError(f"zip member inflates past the {max_bytes}-byte limit for this file (corrupt "
                                  "archive or a zip bomb)", where)
            out.write(piece)
    return out.getvalue()


def _open(archive: Path) -> tuple[zipfile.ZipFile, int, bool]:
    """An open ZipFile of `archive`, the archive's size, and whether it is the kept one (else: close it after use)."""
    stat = archive.stat()
    if time.time() - stat.st_mtime < SETTLED_S:
        return zipfile.ZipFile(archive), stat.st_size, False
    key = (str(archive), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    zf = _OPEN.get(key)
    if zf is None:
        close_archives()
        zf = _OPEN[key] = zipfile.ZipFile(archive)
    return zf, stat.st_size, True


def close_archives() -> None:
    """Close the archive kept open by `read_member` (harmless when none is)."""
    for zf in _OPEN.values():
        zf.close()
    _OPEN.clear()
