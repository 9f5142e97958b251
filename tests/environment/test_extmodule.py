"""Which large shared objects are Python extension modules (bootstrap/coldstart/extmodule.py),
on objects compiled here with the system's C compiler: a real module Python imports, a
library it does not, and files that only look like either. A module is packed and a
library linked (packs.py)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

from bootstrap.coldstart import extmodule, packs

# Past the size at which the pack leaves a file on the volume: a zeroed array in .data
# would be .bss and take no room in the file, so it holds one non-zero byte.
PADDING = f"const char padding[{packs.LARGE_BYTES + 4096}] = {{1}};"

MODULE_C = f"""
#include <Python.h>
{PADDING}
static struct PyModuleDef spec = {{PyModuleDef_HEAD_INIT, "bigmod", NULL, -1, NULL}};
PyMODINIT_FUNC PyInit_bigmod(void) {{ return PyModule_Create(&spec); }}
"""

LIBRARY_C = f"""
{PADDING}
int plain_function(void) {{ return padding[0]; }}
"""


def compile_shared(source: str, output: Path) -> Path:
    compiler = shutil.which("gcc") or shutil.which("cc")
    assert compiler, "these tests compile C: install gcc (Debian: apt-get install gcc)"
    c_file = output.with_suffix(".c")
    c_file.write_text(source)
    subprocess.run([compiler, "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}",
                    str(c_file), "-o", str(output)], check=True, capture_output=True)
    c_file.unlink()
    return output


def module_name() -> str:
    return "bigmod" + importlib.machinery.EXTENSION_SUFFIXES[0]


def test_a_compiled_module_is_one_and_a_library_or_look_alike_is_not(tmp_path: Path) -> None:
    module = compile_shared(MODULE_C, tmp_path / module_name())
    plain_name = compile_shared(MODULE_C, tmp_path / "bigmod.so")
    library = compile_shared(LIBRARY_C, tmp_path / "libplain.so")
    versioned = compile_shared(MODULE_C, tmp_path / "bigmod.so.1")
    # the module really is one: Python imports it
    spec = importlib.util.spec_from_file_location("bigmod", module)
    assert spec is not None and spec.loader is not None
    assert importlib.util.module_from_spec(spec).__name__ == "bigmod"
    assert module.stat().st_size >= packs.LARGE_BYTES

    assert extmodule.is_python_module(module)
    assert extmodule.is_python_module(plain_name), "a plain .so name (libtriton.so's case)"
    assert not extmodule.is_python_module(library)
    assert not extmodule.is_python_module(versioned), "Python imports no .so.1"
    # renamed, the module exports the wrong symbol for its name: not importable as that
    renamed = tmp_path / "other.so"
    shutil.copy(module, renamed)
    assert not extmodule.is_python_module(renamed)
    garbage = tmp_path / "garbage.so"
    garbage.write_bytes(os.urandom(1 << 16))
    truncated = tmp_path / "truncated.so"
    truncated.write_bytes(module.read_bytes()[:100])
    headers_only = tmp_path / "bigmod2.so"
    headers_only.write_bytes(b"\x7fELF" + b"\0" * 60)
    for path in (garbage, truncated, headers_only, tmp_path / "missing.so"):
        assert not extmodule.is_python_module(path), path


def test_a_large_module_is_packed_and_a_large_library_linked(tmp_path: Path) -> None:
    """The copy holds the module itself, so ``os.path.realpath`` of its ``__file__`` (24
    times over for triton's library) never leaves the container's disk."""
    env = tmp_path / "env"
    package = env / "lib" / "pkg"
    package.mkdir(parents=True)
    compile_shared(MODULE_C, package / module_name())
    compile_shared(LIBRARY_C, package / "libplain.so")
    pack = packs.write(env, timeout_s=60)
    assert pack.linked == 1, "only the library is left on the volume"
    copy = tmp_path / "copy"
    copy.mkdir()
    packs.unpack(pack, env, copy, timeout_s=60)
    copied = copy / "lib" / "pkg" / module_name()
    assert not copied.is_symlink()
    assert copied.read_bytes() == (package / module_name()).read_bytes()
    assert os.path.realpath(copied) == str(copied)
    assert os.readlink(copy / "lib" / "pkg" / "libplain.so") == str(package / "libplain.so")

