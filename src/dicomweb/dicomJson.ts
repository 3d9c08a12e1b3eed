/**
 * The DICOM JSON model (PS3.18 F.2): a dataset as an object keyed by tag (eight upper-case hex
 * digits), each attribute with its VR and, when it has one, its values. An attribute without a
 * value has no `Value` key (PS3.18 F.2.5), which is how QIDO-RS answers a return key the
 * instance leaves empty.
 */

import type { DicomJson, DicomJsonAttribute } from '../dicom/json.js';

export type { DicomJson, DicomJsonAttribute };

/** A PN value in DICOM JSON: its component groups by name (PS3.18 F.2.2), empty groups left out. */
export interface PersonNameJson {
  Alphabetic?: string;
  Ideographic?: string;
  Phonetic?: string;
}

/** `Family^Given=Ideographic=Phonetic` as DICOM JSON; null when every group is empty. */
export function personNameJson(pn: string): PersonNameJson | null {
  const [alphabetic, ideographic, phonetic] = pn.split('=');
  const out: PersonNameJson = {};
  if (alphabetic) out.Alphabetic = alphabetic;
  if (ideographic) out.Ideographic = ideographic;
  if (phonetic) out.Phonetic = phonetic;
  return Object.keys(out).length > 0 ? out : null;
}

/** The VRs whose values DICOM JSON writes as numbers (PS3.18 F.2.3). */
const NUMBER_VRS: ReadonlySet<string> = new Set(['IS', 'DS', 'US', 'SS', 'UL', 'SL', 'FL', 'FD', 'UV', 'SV']);

/**
 * One attribute as DICOM JSON from its value: text is split at backslashes into its values
 * (the DICOM delimiter), PN values become objects, IS/US/DS values numbers; null, an empty
 * string or an empty list give an attribute without `Value`.
 */
export function jsonAttribute(vr: string, value: string | number | readonly string[] | null): DicomJsonAttribute {
  if (value === null) return { vr };
  const items = typeof value === 'number' ? [value] : typeof value === 'string' ? (value === '' ? [] : value.split('\\')) : [...value];
  let values: unknown[];
  if (vr === 'PN') values = items.map((v) => (typeof v === 'string' ? personNameJson(v) : null));
  else if (NUMBER_VRS.has(vr))
    values = items.map((v) => {
      const n = typeof v === 'number' ? v : Number(v.trim());
      return Number.isFinite(n) ? n : null;
    });
  else values = items;
  return values.length > 0 && values.some((v) => v !== null && v !== '') ? { vr, Value: values } : { vr };
}
