"""Reading one member of a raw-dataset zip with its sizes checked first.

`zipfile` trusts the sizes recorded in the archive: a corrupt compressed size makes it ask the OS for that many
bytes up front (a flipped bit gave a 1 GiB read buffer; 2^62 raises MemoryError), and a recorded inflated size
is all that bounds a decompression bomb. Both are checked against the archive and a per-caller limit before
anything is read, so a bad archive is a FormatError naming the member.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from pmoe_core.errors import FormatError, MissingFile


def read_member(archive: Path, member: str, where: str, max_bytes: int) -> bytes:
    """The bytes of `member` (KeyError-free: MissingFile / FormatError naming `where`, i.e. "archive:member")."""
    try:
        size = archive.stat().st_size
        with zipfile.ZipFile(archive) as zf:
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
            return zf.read(info)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error, NotImplementedError,
            ValueError) as err:
        raise FormatError(f"cannot read zip member ({type(err).__name__}: {err})", where) from None
