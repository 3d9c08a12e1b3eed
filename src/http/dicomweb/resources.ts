/**
 * What the DICOMweb routes share: the UIDs of a path checked, the study, series and instance they
 * name looked up (404 with a message saying which is missing), the root URL the answers' links
 * start from, and an instance's bytes parsed.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badParameter, CircusError, notFound, tooLarge } from '../../core/errors.js';
import { isValidUid } from '../../core/uid.js';
import { parseDicom, type ParsedDicom } from '../../dicom/parser.js';
import type { CatalogInstance, CatalogSeries, DicomwebCatalog } from '../../services/dicomwebCatalog.js';

/** Where the DICOMweb face sits below the base path. */
export const DICOMWEB_PREFIX = '/dicom-web';

export interface StudyParams {
  study: string;
}
export interface SeriesParams extends StudyParams {
  series: string;
}
export interface InstanceParams extends SeriesParams {
  instance: string;
}

/** A UID of the path, checked (400 when it is not a UID). */
export function uidParam(value: string | undefined, what: string): string {
  if (value === undefined || !isValidUid(value))
    throw badParameter(`the ${what} UID in the path is not a valid UID: '${String(value).slice(0, 80)}'`);
  return value;
}

export function catalogOf(app: FastifyInstance): DicomwebCatalog {
  const catalog = app.deps.catalog;
  if (!catalog) throw new CircusError('NOT_FOUND', 'this server has no DICOMweb face');
  return catalog;
}

/**
 * The absolute URL of the DICOMweb root as the client reached it (behind a trusted proxy, its
 * X-Forwarded-Proto and -Host), for RetrieveURL and BulkDataURI.
 */
export function rootUrl(request: FastifyRequest): string {
  const basePath = request.server.deps.config.basePath ?? '';
  return `${request.protocol}://${request.host}${basePath}${DICOMWEB_PREFIX}`;
}

export const seriesUrl = (root: string, study: string, series: string): string => `${root}/studies/${study}/series/${series}`;
export const instanceUrl = (root: string, study: string, series: string, sop: string): string => `${seriesUrl(root, study, series)}/instances/${sop}`;

/** The series a path names, which must be in the study it names. */
export async function seriesOfPath(app: FastifyInstance, p: SeriesParams): Promise<CatalogSeries> {
  const study = uidParam(p.study, 'study');
  const seriesUid = uidParam(p.series, 'series');
  const series = await catalogOf(app).series(seriesUid);
  if (!series) throw notFound(`series ${seriesUid} is not found`);
  if (series.studyUid !== study) throw notFound(`series ${seriesUid} is not in study ${study}`);
  return series;
}

/** The instance a path names, in its series. */
export async function instanceOfPath(app: FastifyInstance, p: InstanceParams): Promise<{ series: CatalogSeries; entry: CatalogInstance }> {
  const sop = uidParam(p.instance, 'instance');
  const series = await seriesOfPath(app, p);
  const entry = series.bySop.get(sop);
  if (!entry) throw notFound(`instance ${sop} is not in series ${series.seriesUid}`);
  return { series, entry };
}

/** Every series of the study a path names (404 when the server knows none), at most `maxInstances` instances in all (413). */
export async function studyOfPath(app: FastifyInstance, p: StudyParams, maxInstances: number): Promise<CatalogSeries[]> {
  const study = uidParam(p.study, 'study');
  const catalog = catalogOf(app);
  const records = await catalog.studySeries(study);
  const out: CatalogSeries[] = [];
  let instances = 0;
  for (const r of records) {
    const series = await catalog.series(r.seriesInstanceUid);
    if (!series || series.studyUid !== study) continue;
    instances += series.instances.length;
    if (instances > maxInstances) throw tooLarge(`study ${study} has more than ${maxInstances} instances (dicomwebMaxInstances)`);
    out.push(series);
  }
  if (out.length === 0) throw notFound(`study ${study} is not found`);
  return out;
}

/** The whole instance parsed (pixel data fragments included; with `elementsAfterPixelData`, what follows them too). */
export async function parsedInstance(app: FastifyInstance, entry: CatalogInstance, elementsAfterPixelData = false): Promise<ParsedDicom> {
  const bytes = await entry.instance.bytes();
  try {
    return parseDicom(bytes, { maxInflatedBytes: app.deps.config.maxInflatedBytes, elementsAfterPixelData });
  } catch (err) {
    throw new CircusError('UNPROCESSABLE_SERIES', `instance ${entry.record.sopInstanceUid} cannot be read: ${(err as Error).message}`);
  }
}
