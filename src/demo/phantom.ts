/**
 * The demo series: a CT-like head phantom, written deterministically (same bytes every time).
 *
 * 256 x 256 x 120 voxels of 0.9375 x 0.9375 x 1.5 mm, stored unsigned 16-bit with
 * RescaleIntercept -1024 so the modality values are Int16 Hounsfield units: air -1000, scalp
 * 40, skull 1200 (a shell), brain 35 with white matter 25, two ventricles of CSF 8, a neck
 * below the skull base. An asymmetric marker shows flipped axes: a bright sphere (600 HU) in
 * the patient's left, anterior, upper head, and an "L" of bone-like blocks in the air beside
 * the left side of the head on the upper slices. Patient coordinates are LPS: +x patient
 * left (image right in an axial view), +y posterior (image down), +z head.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tag, TransferSyntax } from '../dicom/tags.js';
import { imageElements, writeDicom } from '../dicom/writer.js';

export const DEMO = {
  columns: 256,
  rows: 256,
  slices: 120,
  pixelSpacing: 0.9375,
  sliceSpacing: 1.5,
  intercept: -1024,
} as const;

/** A UID under 2.25 derived from a name, so the demo's UIDs never change. */
export function uidFromName(name: string): string {
  const digest = createHash('sha256').update(`circus-rs:${name}`).digest('hex').slice(0, 32);
  return `2.25.${BigInt(`0x${digest}`).toString()}`;
}

export const DEMO_SERIES_UID = uidFromName('demo head phantom series');
export const DEMO_STUDY_UID = uidFromName('demo head phantom study');

/** Deterministic noise in [-1, 1) from integer coordinates. */
function noise(x: number, y: number, z: number): number {
  let h = (x * 374761393 + y * 668265263 + z * 2147483647) | 0;
  h = Math.imul(h ^ (h >>> 13), 1274126177);
  h ^= h >>> 16;
  return (h & 0xffff) / 0x8000 - 1;
}

/** Hounsfield value of the phantom at patient position (mm). */
export function phantomHU(px: number, py: number, pz: number): number {
  const e = (cx: number, cy: number, cz: number, ax: number, ay: number, az: number): number =>
    ((px - cx) / ax) ** 2 + ((py - cy) / ay) ** 2 + ((pz - cz) / az) ** 2;
  const head = e(0, 0, 10, 78, 98, 92);
  // Marker sphere: patient left (+x), anterior (-y), upper (+z).
  if (e(30, -45, 50, 9, 9, 9) <= 1) return 600;
  // "L" in the air at the patient's left, on the upper slices (z from 40 to 80 mm).
  if (pz >= 40 && pz <= 80 && py >= -40 && py <= 20) {
    const stem = px >= 88 && px <= 96;
    const foot = py >= 12 && px >= 88 && px <= 112;
    if (stem || foot) return 1000;
  }
  if (head <= 1) {
    const inner = e(0, 0, 10, 70, 90, 84);
    if (inner > 1) return 40; // scalp
    const brain = e(0, 2, 10, 65, 85, 79);
    if (brain > 1) return 1200; // skull
    if (pz < -40) return 35 + 10 * Math.sign(Math.sin(px / 6)); // skull base texture
    const ventricle = Math.min(e(-12, 0, 25, 7, 25, 14), e(12, 0, 25, 7, 25, 14));
    if (ventricle <= 1) return 8;
    if (e(0, 2, 15, 45, 62, 52) <= 1) return 25; // white matter
    return 35;
  }
  // Neck below the head.
  if (pz < -50 && (px / 50) ** 2 + ((py - 10) / 55) ** 2 <= 1) {
    if ((px / 9) ** 2 + ((py - 25) / 9) ** 2 <= 1) return 700; // spine
    return 45;
  }
  return -1000;
}

/** Stored values (HU - intercept) of slice `k` (k = 0 is the top of the head). */
export function phantomSlice(k: number): Uint16Array {
  const { columns, rows, pixelSpacing } = DEMO;
  const out = new Uint16Array(columns * rows);
  const z = sliceZ(k);
  for (let j = 0; j < rows; j++) {
    const py = (j - (rows - 1) / 2) * pixelSpacing;
    for (let i = 0; i < columns; i++) {
      const px = (i - (columns - 1) / 2) * pixelSpacing;
      const hu = phantomHU(px, py, z);
      const n = hu > -900 ? Math.round(noise(i, j, k) * 6) : 0;
      out[i + j * columns] = hu + n - DEMO.intercept;
    }
  }
  return out;
}

/** Patient z (mm) of slice k: the top slice at +89.25, going down. */
export const sliceZ = (k: number): number => ((DEMO.slices - 1) / 2 - k) * DEMO.sliceSpacing;

/** Writes the demo series into `dir/<SeriesInstanceUID>/` (the CIRCUS layout). */
export async function writeDemo(dir: string): Promise<{ seriesUid: string; files: number; path: string }> {
  const seriesDir = join(dir, DEMO_SERIES_UID);
  await mkdir(seriesDir, { recursive: true });
  const { columns, rows, pixelSpacing, sliceSpacing } = DEMO;
  const x0 = -((columns - 1) / 2) * pixelSpacing;
  const y0 = -((rows - 1) / 2) * pixelSpacing;
  const frameOfReference = uidFromName('demo frame of reference');
  for (let k = 0; k < DEMO.slices; k++) {
    const elements = imageElements({
      rows,
      columns,
      bitsAllocated: 16,
      bitsStored: 12,
      signed: false,
      pixels: phantomSlice(k),
      seriesInstanceUid: DEMO_SERIES_UID,
      studyInstanceUid: DEMO_STUDY_UID,
      sopInstanceUid: uidFromName(`demo head phantom instance ${k + 1}`),
      modality: 'CT',
      seriesDescription: 'Head phantom 1.5 mm',
      instanceNumber: k + 1,
      imagePositionPatient: [x0, y0, sliceZ(k)],
      imageOrientationPatient: [1, 0, 0, 0, 1, 0],
      pixelSpacing: [pixelSpacing, pixelSpacing],
      sliceThickness: sliceSpacing,
      rescaleSlope: 1,
      rescaleIntercept: DEMO.intercept,
      windowCenter: 40,
      windowWidth: 80,
      extra: [
        { tag: tag(0x0008, 0x0008), vr: 'CS', value: 'ORIGINAL\\PRIMARY\\AXIAL' },
        { tag: tag(0x0008, 0x0020), vr: 'DA', value: '20260101' },
        { tag: tag(0x0008, 0x0030), vr: 'TM', value: '090000' },
        { tag: tag(0x0008, 0x0070), vr: 'LO', value: 'circus-rs' },
        { tag: tag(0x0008, 0x1030), vr: 'LO', value: 'Demo head phantom' },
        { tag: tag(0x0010, 0x0010), vr: 'PN', value: 'Phantom^Head' },
        { tag: tag(0x0010, 0x0020), vr: 'LO', value: 'CIRCUS-DEMO-0001' },
        { tag: tag(0x0018, 0x0060), vr: 'DS', value: 120 },
        { tag: tag(0x0020, 0x0010), vr: 'SH', value: '1' },
        { tag: tag(0x0020, 0x0011), vr: 'IS', value: 1 },
        { tag: tag(0x0020, 0x0052), vr: 'UI', value: frameOfReference },
        { tag: tag(0x0020, 0x1041), vr: 'DS', value: sliceZ(k) },
        { tag: tag(0x0028, 0x1054), vr: 'LO', value: 'HU' },
      ],
    });
    const name = `CT${String(k + 1).padStart(6, '0')}.dcm`;
    await writeFile(join(seriesDir, name), writeDicom(elements, { transferSyntax: TransferSyntax.ExplicitLittle }));
  }
  return { seriesUid: DEMO_SERIES_UID, files: DEMO.slices, path: seriesDir };
}
