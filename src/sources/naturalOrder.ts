/**
 * The order of file names for series without geometry: digit runs compare as numbers, so IM2
 * comes before IM10, whichever layout (folder listing or header index) found the files.
 */

const collator = new Intl.Collator('en', { numeric: true });

/** Compares two paths or names in natural order (negative, zero or positive, as sort wants). */
export const naturalCompare = (a: string, b: string): number => collator.compare(a, b);
