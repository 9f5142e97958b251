"""Whether a shared object is a Python extension module: it exports ``PyInit_<name>``.

The pack leaves large files on the volume, linked from the copy (packs.py). An extension
module must not be one of them. ``inspect.getmodule``, which torch calls at every
``torch.library.register_fake``, resolves the ``__file__`` of each imported module with
``os.path.realpath``, and realpath looks up every component of the path again for each
component on the way: through a link into the volume, 45 round trips for a file nine
directories below the mount. triton's 382 MB library is imported as 24 module names, so a
boot paid ~1,100 round trips for it alone (docs/performance.md, "Fourth round"). A shared
library loaded by the dynamic linker (libtorch, the CUDA libraries) has no ``__file__``
and stays linked.

The check reads the ELF section headers and the dynamic string table, not the whole file.
Anything that is not a readable ELF object with a dynamic symbol table is "not a module":
the file stays linked, as before.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

# Extension modules end in ".so" on Linux (importlib.machinery.EXTENSION_SUFFIXES), tagged
# ("x.cpython-311-x86_64-linux-gnu.so", "x.abi3.so") or plain ("libtriton.so").
SUFFIX = ".so"
SHT_DYNSYM = 11
# ELF header fields by class (1: 32-bit, 2: 64-bit): where e_shoff is and its format, where
# e_shentsize and e_shnum are, and the section header's layout (name, type, flags, addr,
# offset, size, link, ...).
_LAYOUT = {
    1: (0x20, "I", 0x2E, "IIIIIIIIII"),
    2: (0x28, "Q", 0x3A, "IIQQQQIIQQ"),
}
_TYPE, _OFFSET, _SIZE, _LINK = 1, 4, 5, 6
# A dynamic string table larger than this is not read, and the file stays linked (in a
# torch stack the largest is 25 MB, a CUDA library's; libtorch's are 5-6 MB).
MAX_STRINGS = 64 << 20


def is_python_module(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an ELF shared object exporting ``PyInit_<its name up to the first
    dot>``, the symbol Python's import calls."""
    name = os.path.basename(os.fspath(path))
    if not name.endswith(SUFFIX):
        return False
    symbol = b"\0PyInit_" + name.split(".", 1)[0].encode() + b"\0"
    try:
        with open(path, "rb") as f:
            return symbol in _dynamic_strings(f)
    except (OSError, struct.error, IndexError, ValueError):
        return False


def _dynamic_strings(f: BinaryIO) -> bytes:
    """The string table the dynamic symbol table names; b"" when there is none."""
    head = f.read(64)
    if len(head) < 52 or head[:4] != b"\x7fELF" or head[4] not in _LAYOUT:
        return b""
    order = "<" if head[5] == 1 else ">"
    at_shoff, shoff_format, at_shentsize, section_format = _LAYOUT[head[4]]
    (shoff,) = struct.unpack_from(order + shoff_format, head, at_shoff)
    shentsize, shnum = struct.unpack_from(order + "HH", head, at_shentsize)
    if not shoff or not shnum or shentsize < struct.calcsize(order + section_format):
        return b""
    f.seek(shoff)
    table = f.read(shentsize * shnum)
    sections = [struct.unpack_from(order + section_format, table, i * shentsize)
                for i in range(shnum)]
    for section in sections:
        if section[_TYPE] == SHT_DYNSYM:
            strings = sections[section[_LINK]]
            if strings[_SIZE] > MAX_STRINGS:
                return b""
            f.seek(strings[_OFFSET])
            return f.read(strings[_SIZE])
    return b""
