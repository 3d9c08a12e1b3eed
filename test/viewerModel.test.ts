/**
 * The viewer's pure parts (src/viewer: geometry, URL state, windows, the LRU), without a browser:
 * orientation letters from the geometry, oblique planes and clicks, true-aspect boxes, the state
 * a shared URL carries.
 */
import { describe, expect, it } from 'vitest';
import {
  clipLine,
  directionLabel,
  edgeLabels,
  fitBox,
  type Geometry,
  geometryOf,
  normalizeAngle,
  obliquePlane,
  obliquePoint,
  obliqueSteps,
  planePosition,
  sliceOf,
  stepOblique,
  type Vec3,
} from '../src/viewer/geometry.js';
import { LruCache } from '../src/viewer/lru.js';
import { parseState, stateSearch } from '../src/viewer/state.js';
import { CT_PRESETS, draggedAngle, draggedWindow, presetsFor } from '../src/viewer/windows.js';

/** An axial CT as most scanners write it: rows to the patient's left, columns posterior, slices head to feet. */
const axialCt: Geometry = geometryOf({
  voxelCount: [256, 256, 120],
  voxelSize: [0.9375, 0.9375, 1.5],
  estimatedWindow: { width: 2000, level: 0 },
  imageOrientationPatient: [1, 0, 0, 0, 1, 0],
  imagePositionPatient: [-119.53125, -119.53125, 89.25],
  sliceDirection: [0, 0, -1],
});

describe('orientation letters', () => {
  it('name the main axis, and a second one the direction leans towards by more than about 15 degrees', () => {
    expect(directionLabel([1, 0, 0])).toBe('L');
    expect(directionLabel([-1, 0, 0])).toBe('R');
    expect(directionLabel([0, -1, 0])).toBe('A');
    expect(directionLabel([0, 1, 0])).toBe('P');
    expect(directionLabel([0, 0, 1])).toBe('S');
    expect(directionLabel([0, 0, -1])).toBe('I');
    // 20 degrees from L towards A; 5 degrees is not enough to name a second axis.
    expect(directionLabel([Math.cos(0.349), -Math.sin(0.349), 0])).toBe('LA');
    expect(directionLabel([Math.cos(0.087), Math.sin(0.087), 0])).toBe('L');
    expect(directionLabel([-0.6, 0, 0.8])).toBe('SR');
  });

  it('follow the radiological convention for an ordinary axial series', () => {
    expect(edgeLabels(axialCt, 'axial')).toEqual({ left: 'R', right: 'L', top: 'A', bottom: 'P' });
    expect(edgeLabels(axialCt, 'coronal')).toEqual({ left: 'R', right: 'L', top: 'S', bottom: 'I' });
    expect(edgeLabels(axialCt, 'sagittal')).toEqual({ left: 'A', right: 'P', top: 'S', bottom: 'I' });
    expect(edgeLabels(axialCt, 'oblique', 0)).toEqual({ left: 'R', right: 'L', top: 'S', bottom: 'I' });
    expect(edgeLabels(axialCt, 'oblique', 90)).toEqual({ left: 'P', right: 'A', top: 'S', bottom: 'I' });
  });

  it('come from the geometry: a series stacked feet to head shows its coronal image feet up', () => {
    const feetFirst = { ...axialCt, normal: [0, 0, 1] as Vec3 };
    expect(edgeLabels(feetFirst, 'coronal')).toEqual({ left: 'R', right: 'L', top: 'I', bottom: 'S' });
    expect(edgeLabels(feetFirst, 'axial')).toEqual({ left: 'R', right: 'L', top: 'A', bottom: 'P' });
  });

  it('use the slice direction when /metadata gives one, else the normal of the orientation', () => {
    const g = geometryOf({
      voxelCount: [2, 2, 2],
      voxelSize: [1, 1, 1],
      estimatedWindow: { width: 1, level: 0 },
      imageOrientationPatient: [0, 1, 0, 0, 0, -1],
    });
    expect(g.normal).toEqual([-1, 0, 0]);
    expect(edgeLabels(g, 'axial')).toEqual({ left: 'A', right: 'P', top: 'S', bottom: 'I' });
  });
});

describe('planes and positions', () => {
  it('take the slice of a cursor coordinate rounded, inside the volume', () => {
    expect(sliceOf(axialCt, [10.4, 20.5, 119.9], 'sagittal')).toBe(10);
    expect(sliceOf(axialCt, [10.4, 20.5, 119.9], 'coronal')).toBe(21);
    expect(sliceOf(axialCt, [10.4, 20.5, 119.9], 'axial')).toBe(119);
  });

  it('place an axial slice at its patient z, a coronal one at its y', () => {
    // Slice 60 is at z = 89.25 - 60 * 1.5 = -0.75; row 100 at y = -119.53125 + 100 * 0.9375.
    expect(planePosition(axialCt, 'axial', [128, 100, 60])).toEqual({ axis: 'z', mm: -0.75 });
    expect(planePosition(axialCt, 'coronal', [128, 100, 60])).toEqual({ axis: 'y', mm: -119.53125 + 93.75 });
    expect(planePosition(axialCt, 'sagittal', [0, 100, 60])).toEqual({ axis: 'x', mm: -119.53125 });
    // Without positions: the distance from the first plane.
    expect(planePosition({ ...axialCt, origin: null }, 'axial', [0, 0, 10])).toEqual({ axis: 'z', mm: 15 });
  });
});

describe('the oblique pane', () => {
  const size: Vec3 = [0.9375, 0.9375, 1.5];
  const dims: Vec3 = [256, 256, 120];

  it('numbers its planes as coronal slices at 0 degrees and sagittal ones at 90', () => {
    expect(obliquePlane(size, [40, 77, 3], 0)).toBe(77);
    expect(obliquePlane(size, [40, 77, 3], 90)).toBe(40);
    expect(obliqueSteps(size, 0)).toEqual({ s: 0.9375, eu: [1, -0], normal: [0, 1], fixedStep: 0.625 });
  });

  it('steps one plane along its normal at any angle, and not out of the volume', () => {
    for (const angle of [0, 20, 45, 90, 135, -60, 180]) {
      const c: Vec3 = [128, 128, 50];
      const next = stepOblique(size, dims, c, angle, 1)!;
      expect(obliquePlane(size, next, angle) - obliquePlane(size, c, angle), `${angle} degrees`).toBe(1);
      expect(next[2]).toBe(50);
    }
    expect(stepOblique(size, dims, [128, 255, 50], 0, 1)).toBeNull();
    expect(stepOblique(size, dims, [128, 0, 50], 0, -1)).toBeNull();
  });

  it('maps a click to the volume: columns along the rotated line, rows to slices', () => {
    // At 0 degrees column u is x = c.x + (u - centre); row 40 is slice round(40 * 0.625) = 25.
    expect(obliquePoint(size, dims, [100, 60, 0], 0, 100, 130, 40)).toEqual([130, 60, 25]);
    // At 90 degrees the columns run anterior (y decreasing).
    expect(obliquePoint(size, dims, [100, 60, 0], 90, 60, 70, 0)).toEqual([100, 50, 0]);
    // Kept inside the volume.
    expect(obliquePoint(size, dims, [250, 60, 0], 0, 250, 270, 500)).toEqual([255, 60, 119]);
  });

  it('brings angles into (-180, 180]', () => {
    expect(normalizeAngle(190)).toBe(-170);
    expect(normalizeAngle(-180)).toBe(180);
    expect(normalizeAngle(360)).toBe(0);
    expect(draggedAngle(10, 41)).toBe(31);
  });
});

describe('image boxes and overlay lines', () => {
  it('fit an image at its true aspect, as large as the pane allows, centred', () => {
    // A coronal of 96 columns of 0.96 mm and 40 slices of 1.5 mm: 92.16 x 60 mm.
    const box = fitBox(600, 400, 96 * 0.96, 40 * 1.5);
    expect(box.width).toBeCloseTo(600, 9);
    expect(box.height).toBeCloseTo((600 * 60) / 92.16, 9);
    expect(box.top).toBeCloseTo((400 - box.height) / 2, 9);
    const tall = fitBox(600, 400, 10, 100);
    expect(tall).toEqual({ left: 280, top: 0, width: 40, height: 400 });
  });

  it('clip lines to the image', () => {
    expect(clipLine({ x1: -50, y1: 5, x2: 50, y2: 5 }, 10, 10)).toEqual({ x1: 0, y1: 5, x2: 10, y2: 5 });
    expect(clipLine({ x1: 5, y1: -10, x2: 5, y2: 30 }, 10, 20)).toEqual({ x1: 5, y1: 0, x2: 5, y2: 20 });
    expect(clipLine({ x1: -5, y1: -5, x2: 15, y2: 15 }, 10, 10)).toEqual({ x1: 0, y1: 0, x2: 10, y2: 10 });
    expect(clipLine({ x1: 0, y1: 20, x2: 10, y2: 20 }, 10, 10)).toBeNull();
  });
});

describe('the state in the URL', () => {
  it('round-trips the series, token, window, cursor and angle', () => {
    const search = stateSearch({ series: '1.2.3', token: 'abc.def', ww: 400, wl: 40, cursor: [10, 20.5, 30], angle: 30 });
    expect(search).toBe('?series=1.2.3&token=abc.def&ww=400&wl=40&c=10,20.5,30&a=30');
    expect(parseState(search)).toEqual({ series: '1.2.3', token: 'abc.def', ww: 400, wl: 40, cursor: [10, 20.5, 30], angle: 30 });
  });

  it('ignores values that do not parse, and half a window', () => {
    expect(parseState('?series=1.2&ww=0&wl=40&c=1,2&a=x')).toEqual({ series: '1.2', token: null, ww: null, wl: null, cursor: null, angle: 0 });
    expect(parseState('?series=1.2&ww=80&c=1,2,-3')).toEqual({ series: '1.2', token: null, ww: null, wl: null, cursor: null, angle: 0 });
    expect(parseState('')).toEqual({ series: null, token: null, ww: null, wl: null, cursor: null, angle: 0 });
  });
});

describe('windows', () => {
  it('offer the DICOM and estimated windows, then the CT presets', () => {
    const presets = presetsFor({ dicomWindow: { width: 80.4, level: 40.6 }, estimatedWindow: { width: 4096, level: 1024 } });
    expect(presets.map((p) => [p.id, p.width, p.level])).toEqual([
      ['dicom', 80, 41],
      ['estimated', 4096, 1024],
      ['brain', 80, 40],
      ['subdural', 200, 75],
      ['lung', 1500, -600],
      ['bone', 1800, 400],
      ['abdomen', 400, 50],
    ]);
    expect(presetsFor({ estimatedWindow: { width: 10, level: 5 } })[0].id).toBe('estimated');
    expect(CT_PRESETS).toHaveLength(5);
  });

  it('change by a drag: one unit a pixel up to width 200, width / 200 beyond; whole numbers, width at least 1', () => {
    expect(draggedWindow({ width: 80, level: 40 }, 60, 30)).toEqual({ width: 140, level: 70 });
    expect(draggedWindow({ width: 1500, level: -600 }, 10, -4)).toEqual({ width: 1575, level: -630 });
    expect(draggedWindow({ width: 80, level: 40 }, -500, 0)).toEqual({ width: 1, level: 40 });
  });
});

describe('the image cache', () => {
  it('evicts the least recently used entries past its budget, keeping the newest', () => {
    const evicted: string[] = [];
    const lru = new LruCache<{ id: string; bytes: number }>(
      100,
      (v) => v.bytes,
      (v) => evicted.push(v.id),
    );
    lru.set('a', { id: 'a', bytes: 40 });
    lru.set('b', { id: 'b', bytes: 40 });
    expect(lru.get('a')?.id).toBe('a');
    lru.set('c', { id: 'c', bytes: 40 });
    expect(evicted).toEqual(['b']);
    expect([lru.has('a'), lru.has('b'), lru.has('c')]).toEqual([true, false, true]);
    expect(lru.bytes).toBe(80);
    lru.set('huge', { id: 'huge', bytes: 500 });
    expect(evicted).toEqual(['b', 'a', 'c']);
    expect(lru.size).toBe(1);
  });
});
