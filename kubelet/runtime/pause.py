"""The pod sandbox's pause image, built on this node without any registry.

Kubernetes pulls `registry.k8s.io/pause`; Skiff's nodes may reach no registry at all, so the
image is made here: a tar holding one tiny static executable, `/pause`, that waits forever,
imported into the engine (`docker import`) as `skiff/pause:1`.

On x86_64 the executable is generated below as raw bytes (129 of them), so there is nothing to
download or compile. Elsewhere the host's static busybox (Debian's busybox-static) is the
fallback, run as `busybox sleep 2147483647`.

This module does not import `docker` (kubelet/runtime/docker.py is the only one that does): it
builds the bytes, and `ensure_pause_image` drives any object with the SDK's low-level
`inspect_image` and `import_image_from_data` methods (a `docker.APIClient`).
"""

from __future__ import annotations

import io
import os
import platform
import struct
import tarfile
from typing import Any, Protocol

PAUSE_IMAGE = "skiff/pause:1"
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")

# Where the kernel maps the file: the usual base of non-PIE x86_64 executables.
_BASE = 0x400000
_EHDR_SIZE = 64  # sizeof(Elf64_Ehdr)
_PHDR_SIZE = 56  # sizeof(Elf64_Phdr)

# The program, at file offset 120 (right after the two headers):
#   loop: mov eax, 34      b8 22 00 00 00   34 = __NR_pause on x86_64
#         syscall          0f 05            sleeps until a signal handler runs (never: no
#                                           handlers are installed; SIGKILL just ends it)
#         jmp loop         eb f7            -9: back to `mov`, should pause ever return
# As PID 1 of its PID namespace the process gets no default action for SIGTERM or SIGINT, so
# `docker stop` must SIGKILL it (the runtime stops sandboxes with timeout 0).
_CODE = bytes.fromhex("b822000000" "0f05" "ebf7")


class PauseImageError(Exception):
    """No way to build the pause image on this machine."""


def pause_elf_x86_64() -> bytes:
    """A complete static x86_64 Linux ELF executable that calls pause(2) forever.

    Layout (129 bytes, little endian, no sections, no libc, no dynamic loader):
      0..63    Elf64_Ehdr: ELFCLASS64, ELFDATA2LSB, ET_EXEC, EM_X86_64, entry at the code
      64..119  one Elf64_Phdr: PT_LOAD of the whole file at 0x400000, read + execute
      120..128 the code above
    """
    code_offset = _EHDR_SIZE + _PHDR_SIZE
    size = code_offset + len(_CODE)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, LE, version 1, SysV ABI
    ehdr = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        2,  # e_type: ET_EXEC
        0x3E,  # e_machine: EM_X86_64
        1,  # e_version
        _BASE + code_offset,  # e_entry
        _EHDR_SIZE,  # e_phoff: the program header follows the ELF header
        0,  # e_shoff: no section headers (the kernel does not need them)
        0,  # e_flags
        _EHDR_SIZE,  # e_ehsize
        _PHDR_SIZE,  # e_phentsize
        1,  # e_phnum
        0,  # e_shentsize
        0,  # e_shnum
        0,  # e_shstrndx
    )
    phdr = struct.pack(
        "<IIQQQQQQ",
        1,  # p_type: PT_LOAD
        5,  # p_flags: PF_R | PF_X
        0,  # p_offset: map from the start of the file (the headers come along; harmless)
        _BASE,  # p_vaddr
        _BASE,  # p_paddr
        size,  # p_filesz
        size,  # p_memsz: no .bss
        0x1000,  # p_align: page aligned, so offset and vaddr agree modulo the page size
    )
    elf = ehdr + phdr + _CODE
    assert len(elf) == size
    return elf


def _tar(files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    """An in-memory tar of executable files (and symlinks), owned by root."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = sorted({os.path.dirname(p) for p in [*files, *(symlinks or {})]} - {""})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
        for path, target in (symlinks or {}).items():
            info = tarfile.TarInfo(path)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def find_static_busybox() -> str | None:
    """The host's statically linked busybox, if any (a dynamic one would not run alone)."""
    for path in BUSYBOX_PATHS:
        try:
            with open(path, "rb") as f:
                head = f.read(4096)
        except OSError:
            continue
        # A dynamically linked ELF names its interpreter (PT_INTERP) in the first page.
        if head.startswith(b"\x7fELF") and b"ld-linux" not in head and b"ld-musl" not in head:
            return path
    return None


def pause_image_tar(machine: str | None = None) -> tuple[bytes, list[str]]:
    """The image's root filesystem as a tar, and the `docker import` changes to apply."""
    machine = machine or platform.machine()
    if machine in ("x86_64", "amd64"):
        return _tar({"pause": pause_elf_x86_64()}), ['ENTRYPOINT ["/pause"]']
    busybox = find_static_busybox()
    if busybox is None:
        raise PauseImageError(
            f"cannot build {PAUSE_IMAGE} on {machine}: the built-in pause binary is x86_64 "
            f"only and no static busybox was found at {', '.join(BUSYBOX_PATHS)} "
            "(install Debian's busybox-static)"
        )
    with open(busybox, "rb") as f:
        data = f.read()
    return _tar({"bin/busybox": data}), ['ENTRYPOINT ["/bin/busybox", "sleep", "2147483647"]']


class _ImageAPI(Protocol):
    def inspect_image(self, image: str) -> dict[str, Any]: ...

    def import_image_from_data(self, data: bytes, repository: str | None = None,
                               tag: str | None = None,
                               changes: list[str] | None = None) -> Any: ...


def ensure_pause_image(api: _ImageAPI, image: str = PAUSE_IMAGE,
                       machine: str | None = None) -> str:
    """Makes sure `image` exists in the engine; returns its id. Blocking.

    Idempotent: an existing image is kept (one inspect). `api` is a `docker.APIClient`; the
    inspect's not-found error is recognized by its HTTP status, so that this module stays
    free of the `docker` import.
    """
    try:
        return str(api.inspect_image(image)["Id"])
    except Exception as e:
        if getattr(e, "status_code", None) != 404:
            raise
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:  # no tag given: "host:port/name" is not a tag
        repository, tag = image, "latest"
    data, changes = pause_image_tar(machine)
    api.import_image_from_data(data, repository=repository, tag=tag, changes=changes)
    return str(api.inspect_image(image)["Id"])
