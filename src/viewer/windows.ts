/**
 * Windows: the CT presets, the series' own (DICOM and estimated), and how a drag changes the
 * window. Widths and levels are whole numbers, so images of the same window share one URL and
 * come from the caches. No DOM here.
 */

export interface WindowLevel {
  width: number;
  level: number;
}

export interface WindowPreset extends WindowLevel {
  id: string;
  label: string;
}

/** Common CT windows (Hounsfield units). */
export const CT_PRESETS: readonly WindowPreset[] = [
  { id: 'brain', label: 'Brain', width: 80, level: 40 },
  { id: 'subdural', label: 'Subdural', width: 200, level: 75 },
  { id: 'lung', label: 'Lung', width: 1500, level: -600 },
  { id: 'bone', label: 'Bone', width: 1800, level: 400 },
  { id: 'abdomen', label: 'Abdomen', width: 400, level: 50 },
];

/** A window as the viewer uses it: whole numbers, width at least 1. */
export function wholeWindow(w: WindowLevel): WindowLevel {
  return { width: Math.max(1, Math.round(w.width)), level: Math.round(w.level) };
}

/** The presets a series offers: its DICOM window, its estimated window, then the CT presets. */
export function presetsFor(series: { dicomWindow?: WindowLevel; estimatedWindow: WindowLevel }): WindowPreset[] {
  const own: WindowPreset[] = [];
  if (series.dicomWindow) own.push({ id: 'dicom', label: 'DICOM', ...wholeWindow(series.dicomWindow) });
  own.push({ id: 'estimated', label: 'Estimated', ...wholeWindow(series.estimatedWindow) });
  return [...own, ...CT_PRESETS];
}

/**
 * The window after dragging `dx`, `dy` CSS pixels from where the drag began with window `start`:
 * right widens, down raises the level, by max(1, width / 200) units a pixel (so a wide window
 * moves as fast as a narrow one, relative to its width).
 */
export function draggedWindow(start: WindowLevel, dx: number, dy: number): WindowLevel {
  const rate = Math.max(1, start.width / 200);
  return wholeWindow({ width: start.width + dx * rate, level: start.level + dy * rate });
}

/** The oblique angle (degrees) after dragging `dx` CSS pixels: half a degree a pixel, whole degrees. */
export const draggedAngle = (start: number, dx: number): number => Math.round(start + dx / 2);
