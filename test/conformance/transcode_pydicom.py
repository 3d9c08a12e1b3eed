#!/usr/bin/python3
"""Checks files written by src/dicom/transcode.ts against the files they were made from, with
pydicom (and GDCM for compressed pixel data), for test/conformance/transcode.test.ts.

Usage: transcode_pydicom.py PAIRS.json OUT.json, PAIRS.json a list of {input, output, lossy}.
For each pair, OUT.json lists the problems found:
- the output must be Explicit VR Little Endian with a file meta group naming the dataset's
  SOP Class and Instance;
- every element of the input (group lengths and Pixel Data aside) must be in the output with an
  equal value: numbers and text as pydicom reads them, bytes as little endian (big-endian input
  words swapped), sequences item by item;
- pixel_array must be equal (within 1% of the range, and at least 2, for lossy input).
"""
import json
import sys
import warnings

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian

warnings.simplefilter('ignore')
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE

WORDS = {'OW': 2, 'OF': 4, 'OL': 4, 'OD': 8, 'OV': 8}


def as_little(value, vr, little):
    if little or vr not in WORDS or not isinstance(value, bytes):
        return value
    n = WORDS[vr]
    return np.frombuffer(value, dtype=f'>u{n}').astype(f'<u{n}').tobytes()


def compare(a, b, little, where, problems, skip=frozenset()):
    for elem in a:
        tag = elem.tag
        if tag.element == 0 or tag == 0x7FE00010 or elem.keyword in skip:
            continue
        at = f'{where}{tag.group:04X}{tag.element:04X}'
        if tag not in b:
            problems.append(f'{at}: missing')
            continue
        other = b[tag]
        if elem.VR == 'SQ' or other.VR == 'SQ':
            if elem.VR != other.VR:
                problems.append(f'{at}: VR {elem.VR} became {other.VR}')
                continue
            if len(elem.value) != len(other.value):
                problems.append(f'{at}: {len(elem.value)} items became {len(other.value)}')
                continue
            for i, (x, y) in enumerate(zip(elem.value, other.value)):
                compare(x, y, little, f'{at}/{i}/', problems)
            continue
        mine = as_little(elem.value, elem.VR, little)
        theirs = other.value
        if isinstance(mine, bytes) and isinstance(theirs, bytes) and len(theirs) == len(mine) + 1:
            theirs = theirs[:-1]  # padding to an even length
        if str(mine) != str(theirs):
            problems.append(f'{at}: {str(mine)[:80]!r} became {str(theirs)[:80]!r} ({elem.VR} -> {other.VR})')


def check(pair):
    problems = []
    src = pydicom.dcmread(pair['input'])
    out = pydicom.dcmread(pair['output'])
    meta = out.file_meta
    if meta.TransferSyntaxUID != ExplicitVRLittleEndian:
        problems.append(f'transfer syntax {meta.TransferSyntaxUID}')
    if 'SOPInstanceUID' in src and meta.MediaStorageSOPInstanceUID != src.SOPInstanceUID:
        problems.append('MediaStorageSOPInstanceUID')
    if 'SOPClassUID' in src and meta.MediaStorageSOPClassUID != src.SOPClassUID:
        problems.append('MediaStorageSOPClassUID')
    if out.is_implicit_VR or not out.is_little_endian:
        problems.append('not read as Explicit VR Little Endian')
    # Attributes the decoding changed (PhotometricInterpretation, PlanarConfiguration).
    changed = frozenset(pair.get('changed', []))
    compare(src, out, src.is_little_endian, '', problems, changed)
    pixels = None
    if 'PixelData' in src:
        try:
            expected = src.pixel_array
        except Exception as err:
            return {'problems': problems, 'pixels': f'input not decoded by pydicom: {type(err).__name__}: {err}'}
        actual = out.pixel_array
        if expected.shape != actual.shape:
            problems.append(f'pixel_array shape {expected.shape} became {actual.shape}')
        else:
            diff = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
            worst = float(diff.max()) if diff.size else 0.0
            if pair.get('lossy'):
                span = float(expected.max()) - float(expected.min()) if expected.size else 0.0
                if worst > max(2.0, 0.01 * span):
                    problems.append(f'pixel_array differs by up to {worst} (lossy)')
            elif worst != 0:
                problems.append(f'pixel_array differs by up to {worst}')
        pixels = 'compared'
    return {'problems': problems, 'pixels': pixels}


def main():
    pairs = json.load(open(sys.argv[1], encoding='utf-8'))
    report = {}
    for pair in pairs:
        try:
            report[pair['output']] = check(pair)
        except Exception as err:
            report[pair['output']] = {'problems': [f'{type(err).__name__}: {err}'], 'pixels': None}
    json.dump(report, open(sys.argv[2], 'w', encoding='utf-8'))


if __name__ == '__main__':
    main()
