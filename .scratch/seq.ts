// Renders the bench's planes one after another in one isolate (as a worker does), for a source root.
const root = process.argv[2];
const { renderPng } = await import(`${root}/src/services/renderJob.ts`);
const { obliqueLayout } = await import(`${root}/src/core/mpr/oblique.ts`);
const { PixelFormat } = await import(`${root}/src/core/volume/volume.ts`);
const NX = 512, NY = 512, NZ = 300;
const data = new Int16Array(new SharedArrayBuffer(NX * NY * NZ * 2));
for (let i = 0; i < data.length; i++) data[i] = ((i * 2654435761) >>> 20) % 2000 - 1000;
const grid = { dims: [NX, NY, NZ], voxelSize: [0.7, 0.7, 1], pixelFormat: PixelFormat.Int16, data };
const c = [(NX - 1) / 2, (NY - 1) / 2, (NZ - 1) / 2];
const kinds: [string, (i: number) => unknown][] = [
  ['axial', (i) => ({ kind: 'mpr', grid, mode: 'axial', target: (i * 97) % NZ, window: { width: 400, level: 40 + i / 1000 } })],
  ['sagittal', (i) => ({ kind: 'mpr', grid, mode: 'sagittal', target: (i * 97) % NX, window: { width: 400, level: 40 + i / 1000 } })],
  ['obl-axial', (i) => ({ kind: 'oblique', grid, layout: obliqueLayout(grid, { a: 0.5 + i / 1e6, b: 'axial', c }), window: { width: 400, level: 40 } })],
  ['obl-coronal', (i) => ({ kind: 'oblique', grid, layout: obliqueLayout(grid, { a: 0.5 + i / 1e6, b: 'coronal', c }), window: { width: 400, level: 40 } })],
];
const out: string[] = [];
for (let round = 0; round < 2; round++) {
  for (const [name, job] of kinds) {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < 2000) renderPng(job(n++));
    if (round === 1) out.push(`${name} ${((performance.now() - t0) / n).toFixed(3)}`);
  }
}
console.log(root.split('/').pop(), out.join('  '));
