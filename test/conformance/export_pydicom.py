#!/usr/bin/python3
"""Exports pydicom's modality values for its own uncompressed test files.

Usage: export_pydicom.py OUTPUT_DIR [TEST_FILES_DIR] [--compressed]

For every file under pydicom's test_files folder (recursively, in sorted order) that pydicom
reads and that is a single-frame, monochrome (MONOCHROME1/2, SamplesPerPixel 1), 8- or 16-bit
image in an uncompressed transfer syntax (Implicit VR LE, Explicit VR LE, Explicit VR BE,
Deflated Explicit VR LE), writes:

- ``NNNN.f64``: the modality values, ``apply_modality_lut(ds.pixel_array, ds)``, as float64
  little-endian, row-major (row 0 first), ``rows * columns`` values;
- ``NNNN.pad``: only for files with PixelPaddingValue, one byte per pixel, 1 where the stored
  value is padding (PixelPaddingValue, or the inclusive range it spans with
  PixelPaddingRangeLimit), 0 elsewhere;

and ``manifest.json``::

    {"pydicom": "2.3.1", "numpy": "...", "root": "...",
     "files": [{"path", "name", "rows", "columns", "min", "max", "values", "padding", ...}],
     "skipped": [{"path", "name", "stage", "reason"}]}

``min``/``max`` are over the non-padding pixels (null when every pixel is padding), matching
circus-rs's policy (src/core/volume/modality.ts): padding takes no part in the value range.
Files outside the scope above, and files pydicom itself cannot read or decode, are listed in
``skipped`` with the stage (read, filter, decode) and the reason.

Only the standard library, numpy and pydicom are used; nothing is downloaded.
"""

import json
import os
import sys
import warnings

import numpy as np
import pydicom

try:  # pydicom >= 3
    from pydicom.pixels import apply_modality_lut
except ImportError:  # pydicom 2.x
    from pydicom.pixel_data_handlers.util import apply_modality_lut

UNCOMPRESSED = {
    "1.2.840.10008.1.2": "Implicit VR Little Endian",
    "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
    "1.2.840.10008.1.2.2": "Explicit VR Big Endian",
    "1.2.840.10008.1.2.1.99": "Deflated Explicit VR Little Endian",
}


def default_root():
    return os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")


def walk(root):
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            yield os.path.join(folder, name)


def read(path):
    """Reads a file as pydicom does; files without a preamble are read with force=True."""
    try:
        return pydicom.dcmread(path), False
    except pydicom.errors.InvalidDicomError:
        return pydicom.dcmread(path, force=True), True


def transfer_syntax(ds):
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid:
        return str(uid)
    # A bare dataset read with force=True: pydicom guessed the encoding from the bytes.
    if getattr(ds, "is_little_endian", None) is None:
        return None
    if ds.is_little_endian:
        return "1.2.840.10008.1.2" if ds.is_implicit_VR else "1.2.840.10008.1.2.1"
    return "1.2.840.10008.1.2.2"


def out_of_scope(ds, ts, compressed=False):
    """The reason a dataset is not a single-frame monochrome 8/16-bit image (uncompressed unless
    `compressed`), or None."""
    if "PixelData" not in ds:
        return "no Pixel Data"
    if ts is None:
        return "no transfer syntax"
    if ts not in UNCOMPRESSED and not compressed:
        return f"transfer syntax {ts} is not uncompressed"
    frames = ds.get("NumberOfFrames")
    if frames not in (None, "") and int(frames) != 1:
        return f"NumberOfFrames {frames}"
    if ds.get("SamplesPerPixel", 1) != 1:
        return f"SamplesPerPixel {ds.get('SamplesPerPixel')}"
    pi = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if pi not in ("MONOCHROME1", "MONOCHROME2"):
        return f"PhotometricInterpretation {pi or '(none)'}"
    if ds.get("BitsAllocated") not in (8, 16):
        return f"BitsAllocated {ds.get('BitsAllocated')}"
    return None


def first(value):
    """First value of a possibly multi-valued attribute."""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return value[0] if len(value) else None
    return value


def export(out_dir, root, compressed=False):
    os.makedirs(out_dir, exist_ok=True)
    files = []
    skipped = []
    for path in walk(root):
        name = os.path.relpath(path, root)

        def skip(stage, reason):
            skipped.append({"path": path, "name": name, "stage": stage, "reason": reason})

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds, forced = read(path)
            except Exception as exc:  # noqa: BLE001 - any failure means pydicom does not read it
                skip("read", f"pydicom cannot read it: {type(exc).__name__}: {exc}")
                continue
            try:
                ts = transfer_syntax(ds)
                reason = out_of_scope(ds, ts, compressed)
            except Exception as exc:  # noqa: BLE001 - malformed attributes
                skip("read", f"pydicom cannot read its attributes: {type(exc).__name__}: {exc}")
                continue
            if reason is not None:
                skip("filter", reason)
                continue
            if forced:
                ds.file_meta.TransferSyntaxUID = ts
            try:
                stored = ds.pixel_array
                values = np.asarray(apply_modality_lut(stored, ds), dtype="<f8")
            except Exception as exc:  # noqa: BLE001 - pydicom itself cannot decode the pixels
                skip("decode", f"pydicom cannot decode the pixel data: {type(exc).__name__}: {exc}")
                continue

        rows, columns = int(ds.Rows), int(ds.Columns)
        if values.shape != (rows, columns):
            skip("decode", f"pydicom decoded shape {values.shape}, expected {(rows, columns)}")
            continue

        index = len(files)
        values_file = f"{index:04d}.f64"
        values.ravel(order="C").astype("<f8").tofile(os.path.join(out_dir, values_file))

        entry = {
            "path": path,
            "name": name,
            "rows": rows,
            "columns": columns,
            "transferSyntax": ts,
            "forced": forced,
            "photometricInterpretation": str(ds.PhotometricInterpretation).strip().upper(),
            "bitsAllocated": int(ds.BitsAllocated),
            "bitsStored": int(ds.get("BitsStored", ds.BitsAllocated)),
            "pixelRepresentation": int(ds.get("PixelRepresentation", 0)),
            "rescaleSlope": None if ds.get("RescaleSlope") is None else float(first(ds.RescaleSlope)),
            "rescaleIntercept": None if ds.get("RescaleIntercept") is None else float(first(ds.RescaleIntercept)),
            "modalityLutSequence": bool(ds.get("ModalityLUTSequence")),
            "values": values_file,
            "padding": None,
        }

        keep = np.ones(values.shape, dtype=bool)
        pad_value = ds.get("PixelPaddingValue")
        if pad_value is not None:
            lo = hi = int(first(pad_value))
            limit = ds.get("PixelPaddingRangeLimit")
            if limit is not None:
                lo, hi = min(lo, int(first(limit))), max(lo, int(first(limit)))
            mask = (stored >= lo) & (stored <= hi)
            pad_file = f"{index:04d}.pad"
            mask.astype(np.uint8).ravel(order="C").tofile(os.path.join(out_dir, pad_file))
            keep = ~mask
            entry["padding"] = {"low": lo, "high": hi, "count": int(mask.sum()), "mask": pad_file}

        kept = values[keep]
        entry["min"] = float(kept.min()) if kept.size else None
        entry["max"] = float(kept.max()) if kept.size else None
        files.append(entry)

    manifest = {
        "pydicom": pydicom.__version__,
        "numpy": np.__version__,
        "root": root,
        "files": files,
        "skipped": skipped,
    }
    with open(os.path.join(out_dir, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def main(argv):
    # --compressed: also compressed transfer syntaxes, decoded by pydicom's handlers (GDCM).
    compressed = "--compressed" in argv
    argv = [a for a in argv if a != "--compressed"]
    if len(argv) not in (2, 3):
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        return 2
    root = argv[2] if len(argv) == 3 else default_root()
    if not os.path.isdir(root):
        sys.stderr.write(f"pydicom test files not found at {root}\n")
        return 1
    manifest = export(argv[1], root, compressed)
    print(f"exported {len(manifest['files'])} files, skipped {len(manifest['skipped'])} (pydicom {manifest['pydicom']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
