"""A function that writes to its worker's answer pipe behind the protocol's back."""

import os
import stat
import struct


def pipe_writer(mode: str = "garbage", mb: int = 64) -> str:
    """Write to every write-only pipe this process holds: ``garbage`` (a short frame with
    an unknown status) or ``bomb`` (a header announcing 4 GiB, then ``mb`` MiB of data)."""
    targets = []
    for fd in range(3, 64):
        try:
            info = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISFIFO(info.st_mode) and os.get_blocking(fd) is not None:
            flags = __import__("fcntl").fcntl(fd, __import__("fcntl").F_GETFL)
            if flags & os.O_ACCMODE == os.O_WRONLY:
                targets.append(fd)
    for fd in targets:
        try:
            if mode == "bomb":
                os.write(fd, struct.pack(">I", 0xFFFFFFF0))
                block = b"A" * (1 << 20)
                for _ in range(mb):
                    os.write(fd, block)
            else:
                os.write(fd, b"\x00\x00\x00\x05GARBAGE-GARBAGE")
        except OSError:
            pass
    return f"wrote to {len(targets)} pipes"
