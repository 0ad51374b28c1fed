"""Hostile inputs that are small on disk and huge in what they declare: a NIfTI header with no
voxels, a PNG header over a few bytes, a YAML alias bomb, an HTTP answer that never ends.

Shared by tests/bad_inputs/ and benchmarks/bad_input_memory.py, which measures the memory
each one costs the command that refuses it.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import struct
import zipfile
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

AFFINE = np.diag([-0.7, -0.7, 2.5, 1.0])

# "Billion laughs": nine lines, each a list of nine aliases of the line before (9^9 leaves).
YAML_ALIAS_BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi")
)


def nifti_header_only(path: Path, shape, dtype=np.int16, affine=AFFINE) -> Path:
    """A .nii.gz whose header declares ``shape`` and which holds no voxel at all."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_sform(affine, code=1)
    header["vox_offset"] = 352
    path.write_bytes(gzip.compress(header.binaryblock + b"\0" * 4))
    return path


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (8-bit grey) over a few bytes of
    data: what a decompression bomb looks like to a reader before it decodes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def send(handler, body: bytes, headers: dict[str, str]) -> None:
    """Write a whole answer (status 200) and close the connection after it."""
    handler.send_response(200)
    for key, value in {"Connection": "close", **headers}.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.close_connection = True
    with contextlib.suppress(OSError):  # the client refused it part-way: what the caller wants
        handler.wfile.write(body)


def endless(handler, start: bytes = b"[", piece: bytes = b'{"pad": "' + b"x" * 65000 + b'"},'):
    """A chunked answer that never ends (until the client hangs up)."""
    handler.send_response(200)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    handler.close_connection = True
    try:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(start), start))
        while True:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
    except OSError:
        pass
