"""What a CT slice's values may be before convert uses them (one rule per concern).

A DICOM file can hold any number in any tag: a NaN slope, an infinite intercept, direction
cosines of length 3, a pixel module that does not describe the data. Used as they are, they
give a volume of 0 HU, of 32767 HU, or of 2 mm voxels where the scan has 0.7, and convert
would exit 0. Each check here refuses such a value with a ScanError naming the file and the
tag, so a bad slice is a rejected scan (inspect) or exit 2 (convert), never a wrong volume.
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from lidcseg.errors import ScanError
from lidcseg.io import AXIS_COSINE_TOLERANCE, SPACING_RANGE_MM

# CT stores 8-16-bit values; HU run from -1024 (air) to about +30,000 (metal on extended-
# range scanners), so the slope that maps one onto the other lies well within 1/1000..1000
# (1 in nearly every scanner, 0.5 or 2 in a few) and the intercept within int16's range
# (-1024, -1000 or -8192 in practice). Outside these, the tags are broken, not a scanner.
SLOPE_RANGE = (1e-3, 1e3)
INTERCEPT_RANGE = (-32768.0, 32767.0)
# ImageOrientationPatient holds two direction cosines: each of length 1 (to this
# tolerance, which the 6 decimals scanners write keep well within) and at right angles.
UNIT_TOLERANCE = 1e-3
HU_RANGE = (-32768, 32767)  # what the int16 volume holds; a value beyond it would be clipped


def check_rescale(slope, intercept, path: Path) -> tuple[float, float]:
    """RescaleSlope and RescaleIntercept as floats, finite and plausible for CT."""
    values = []
    for name, value, (low, high) in (
        ("RescaleSlope", slope, SLOPE_RANGE),
        ("RescaleIntercept", intercept, INTERCEPT_RANGE),
    ):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ScanError(path, f"{name} {value!r} is not a number") from None
        if name == "RescaleSlope" and number == 0:
            raise ScanError(path, "RescaleSlope is 0: every value would map to the intercept")
        if not (math.isfinite(number) and low <= number <= high):
            raise ScanError(
                path, f"{name} {number:g} is not a finite number within {low:g}..{high:g} for CT"
            )
        values.append(number)
    return values[0], values[1]


def check_orientation(orientation: np.ndarray, path: Path) -> None:
    """ImageOrientationPatient's two cosines: unit length, orthogonal. A longer vector would
    scale the voxels (length 3 gives 2.1 mm voxels for 0.7 mm pixels) and a slanted pair
    would shear them, both silently."""
    row, col = orientation[:3], orientation[3:]
    lengths = np.linalg.norm(row), np.linalg.norm(col)
    if max(abs(n - 1) for n in lengths) > UNIT_TOLERANCE:
        raise ScanError(
            path,
            f"ImageOrientationPatient {orientation.tolist()}: direction cosines of length "
            f"{lengths[0]:.4g} and {lengths[1]:.4g}, not 1",
        )
    if abs(float(row @ col)) > AXIS_COSINE_TOLERANCE:
        raise ScanError(
            path,
            f"ImageOrientationPatient {orientation.tolist()}: rows and columns are not at "
            f"right angles (cosine {float(row @ col):.3g})",
        )


def check_pixel_spacing(spacing: np.ndarray, path: Path) -> None:
    """PixelSpacing within the voxel sizes a CT volume can have (lidcseg.io.SPACING_RANGE_MM,
    the rule every volume's grid follows)."""
    low, high = SPACING_RANGE_MM
    if spacing.min() < low or spacing.max() > high:
        raise ScanError(path, f"PixelSpacing {spacing.tolist()} is outside {low:g}-{high:g} mm")


def instance_number(value, path: Path) -> int:
    """InstanceNumber (only used to choose between two slices at one position), or 0 when
    absent; a value that is not a whole number is refused rather than guessed."""
    if value is None or value == "":
        return 0
    try:
        return int(str(value).strip())
    except ValueError:
        raise ScanError(path, f"InstanceNumber {str(value)!r} is not a whole number") from None


def pixel_layout(header: dict, path: Path) -> tuple[int, int, int, int, bool]:
    """(Rows, Columns, BitsAllocated, BitsStored, signed) of the Image Pixel module, each
    present and consistent: Rows and Columns >= 1, BitsAllocated 8 or 16, BitsStored from 1
    to BitsAllocated, PixelRepresentation 0 or 1 (PS3.3 C.7.6.3)."""
    values = {}
    for keyword in ("Rows", "Columns", "BitsAllocated", "PixelRepresentation"):
        value = header.get(keyword)
        if value is None or value == "":
            raise ScanError(path, f"{keyword} missing: the pixel data cannot be laid out")
        try:
            values[keyword] = int(value)
        except (TypeError, ValueError):
            raise ScanError(path, f"{keyword} {value!r} is not a whole number") from None
    rows, cols, bits = values["Rows"], values["Columns"], values["BitsAllocated"]
    if rows < 1 or cols < 1:
        raise ScanError(path, f"Rows {rows}, Columns {cols}: an image has at least one pixel")
    if bits not in (8, 16):
        raise ScanError(path, f"BitsAllocated={bits}; CT slices store 16 (or 8) bits")
    stored = header.get("BitsStored")
    stored = bits if stored in (None, "") else int(stored)
    if not 1 <= stored <= bits:
        raise ScanError(path, f"BitsStored={stored} does not fit BitsAllocated={bits}")
    if values["PixelRepresentation"] not in (0, 1):
        raise ScanError(
            path, f"PixelRepresentation={values['PixelRepresentation']} (0 unsigned, 1 signed)"
        )
    return rows, cols, bits, stored, values["PixelRepresentation"] == 1


@contextmanager
def decoding(syntax, path: Path):
    """Decode compressed pixel data with pydicom: a transfer syntax without a decoder here is
    named as such, and a decoder's failure is one line naming the file (its own logged
    traceback silenced: it says nothing the line does not)."""
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise ScanError(path, f"no decoder for {syntax.name} ({syntax}) in pydicom") from None
    if not decoder.is_available:
        raise ScanError(
            path, f"no decoder for {syntax.name} ({syntax}) installed (pydicom's plugins for it)"
        )
    quiet = logging.getLogger("pydicom")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        yield
    except ScanError:
        raise
    except Exception as exc:  # noqa: BLE001  (every decoder raises its own types)
        reason = " ".join(str(exc).split())
        raise ScanError(
            path, f"cannot decode compressed pixel data ({syntax.name}): {reason}"
        ) from None
    finally:
        quiet.setLevel(level)


def check_hu(low: float, high: float, path: Path) -> None:
    """The HU a slice's stored values map to fit the int16 volume: clipping them would turn
    a wrong slope, intercept or sign into a plausible-looking 32767 HU."""
    if low < HU_RANGE[0] or high > HU_RANGE[1]:
        raise ScanError(
            path,
            f"stored values map to {low:.6g}..{high:.6g} HU, beyond {HU_RANGE[0]}..{HU_RANGE[1]}: "
            "RescaleSlope/Intercept or PixelRepresentation (signed or not) do not describe "
            "the data",
        )
