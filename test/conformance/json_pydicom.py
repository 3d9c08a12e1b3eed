#!/usr/bin/python3
"""Writes pydicom's DICOM JSON (Dataset.to_json_dict) of pydicom's own test files, for
test/conformance/dicomJson.test.ts to compare with src/dicom/json.ts.

Usage: json_pydicom.py OUT.json [FILE ...]   (default: every file under pydicom's test_files)

Every binary value is inline (no bulk data handler); the top-level Pixel Data's base64 is
replaced by the SHA-256 of its bytes ({"vr": ..., "sha256": ...}) to keep the output small.
"""
import base64
import hashlib
import json
import os
import sys
import warnings

import pydicom
from pydicom.data import get_testdata_file

warnings.simplefilter('ignore')


def files():
    data = os.path.dirname(os.path.dirname(get_testdata_file('CT_small.dcm')))
    for sub in ('test_files', 'charset_files'):
        for dirpath, _dirs, names in sorted(os.walk(os.path.join(data, sub))):
            for n in sorted(names):
                yield os.path.join(dirpath, n)


def charset(ds):
    value = ds.get('SpecificCharacterSet')
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def export(path):
    ds = pydicom.dcmread(path)
    try:
        out = ds.to_json_dict(bulk_data_threshold=1 << 30, bulk_data_element_handler=None)
        suppressed = False
    except Exception:
        out = ds.to_json_dict(bulk_data_threshold=1 << 30, bulk_data_element_handler=None, suppress_invalid_tags=True)
        suppressed = True
    px = out.get('7FE00010')
    if px is not None and 'InlineBinary' in px:
        data = base64.b64decode(px.pop('InlineBinary'))
        if not ds.is_little_endian and px['vr'] == 'OW':
            # pydicom's InlineBinary is the big-endian bytes as stored; DICOM JSON's are little
            # endian: the samples as pydicom decodes them, written little endian.
            arr = ds.pixel_array
            data = arr.astype(arr.dtype.newbyteorder('<')).tobytes()
        px['sha256'] = hashlib.sha256(data).hexdigest()
    meta = getattr(ds, 'file_meta', None)
    ts = str(meta.TransferSyntaxUID) if meta is not None and 'TransferSyntaxUID' in meta else None
    return {
        'json': out,
        'suppressed': suppressed,
        'transferSyntax': ts,
        'charset': charset(ds),
    }


def main():
    out_path = sys.argv[1]
    paths = sys.argv[2:] or list(files())
    result = {'pydicom': pydicom.__version__, 'files': {}, 'skipped': {}}
    for p in paths:
        try:
            result['files'][p] = export(p)
        except Exception as err:  # pydicom cannot read it: not a reference
            result['skipped'][p] = f'{type(err).__name__}: {err}'
    with open(out_path, 'w', encoding='utf-8') as f:
        json.dump(result, f)


if __name__ == '__main__':
    main()
