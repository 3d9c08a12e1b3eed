/** Minimal 3-vector helpers for patient coordinates (LPS, millimetres). */
export type Vec3 = readonly [number, number, number];

export const dot = (a: Vec3, b: Vec3): number => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];

export const cross = (a: Vec3, b: Vec3): Vec3 => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];

export const norm = (a: Vec3): number => Math.sqrt(dot(a, a));

export const scale = (a: Vec3, k: number): Vec3 => [a[0] * k, a[1] * k, a[2] * k];

/** Unit vector in the direction of `a`; throws on a zero vector. */
export function normalize(a: Vec3): Vec3 {
  const n = norm(a);
  if (!(n > 0) || !Number.isFinite(n)) throw new RangeError('cannot normalize a zero or non-finite vector');
  return scale(a, 1 / n);
}
