/**
 * The series browser: `GET /series` as a table (patient, study, series, modality, images, size),
 * searched by the server as the user types (`q`), a page at a time, each row opening the viewer
 * on its series. When the server does not list series (authentication on without
 * `allowListing`) the page says why, and a series can still be opened by its UID.
 */
import type { SeriesPage, SeriesSummary } from '../wire/seriesList.js';
import { Api, ApiError, isAbort } from './api.js';

const PAGE = 200;

/** A DICOM person name (`Family^Given^Middle`, groups split by `=`) as people write it. */
export function personName(pn: string | null): string {
  if (!pn) return '';
  return pn
    .split('=')
    .map((group) => group.split('^').filter(Boolean).join(' '))
    .filter(Boolean)
    .join(' = ');
}

function cell(row: HTMLTableRowElement, text: string, className = ''): HTMLTableCellElement {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

export class SeriesBrowser {
  private readonly root: HTMLElement;
  private readonly search: HTMLInputElement;
  private readonly count: HTMLElement;
  private readonly banner: HTMLElement;
  private readonly body: HTMLTableSectionElement;
  private readonly more: HTMLButtonElement;
  private controller: AbortController | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private shown = 0;
  private query = '';

  /**
   * `openSeries` opens a series in this page (its modules loaded, its connection open) rather
   * than through a new document; a link followed with a modifier key or another button still
   * opens the usual way (a new tab, say).
   */
  constructor(
    parent: HTMLElement,
    private readonly api: Api,
    private readonly openSeries: (search: string) => void = (search) => {
      location.href = search;
    },
  ) {
    document.title = 'Series – circus-rs';
    this.root = document.createElement('div');
    this.root.className = 'browser';
    this.root.dataset.state = 'loading';
    parent.appendChild(this.root);
    const bar = document.createElement('header');
    bar.className = 'bar';
    const title = document.createElement('strong');
    title.textContent = 'circus-rs · series';
    this.search = document.createElement('input');
    this.search.type = 'search';
    this.search.placeholder = 'Search patient, ID, date, description, modality';
    this.search.setAttribute('aria-label', 'search series');
    this.search.value = new URLSearchParams(location.search).get('q') ?? '';
    this.search.addEventListener('input', () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.load(this.search.value.trim(), 0), 150);
    });
    this.count = document.createElement('span');
    this.count.className = 'count';
    bar.append(title, this.search, this.count);

    this.banner = document.createElement('div');
    this.banner.className = 'banner';
    this.banner.setAttribute('role', 'alert');
    this.banner.hidden = true;

    const table = document.createElement('table');
    table.className = 'series-list';
    const head = table.createTHead().insertRow();
    for (const h of ['Patient', 'Patient ID', 'Study date', 'Study', 'Series', 'Modality', 'Images', 'Size']) {
      const th = document.createElement('th');
      th.textContent = h;
      head.appendChild(th);
    }
    this.body = table.createTBody();
    this.body.addEventListener('click', (e) => {
      const row = (e.target as HTMLElement).closest('tr');
      if (!row?.dataset.series) return;
      const onLink = (e.target as HTMLElement).closest('a') !== null;
      if (onLink && (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey)) return;
      e.preventDefault();
      this.controller?.abort();
      clearTimeout(this.timer);
      this.openSeries(`?series=${encodeURIComponent(row.dataset.series)}`);
    });

    this.more = document.createElement('button');
    this.more.type = 'button';
    this.more.className = 'more';
    this.more.textContent = 'Show more';
    this.more.hidden = true;
    this.more.addEventListener('click', () => this.load(this.query, this.shown));

    const form = document.createElement('form');
    form.className = 'open-uid';
    const label = document.createElement('label');
    label.textContent = 'Open a series by its UID ';
    const uid = document.createElement('input');
    uid.name = 'series';
    uid.required = true;
    uid.pattern = '[0-9.]+';
    uid.placeholder = '1.2.840…';
    label.appendChild(uid);
    const open = document.createElement('button');
    open.type = 'submit';
    open.textContent = 'Open';
    form.append(label, open);

    const wrap = document.createElement('div');
    wrap.className = 'list';
    wrap.append(this.banner, table, this.more, form);
    this.root.append(bar, wrap);
  }

  open(): void {
    this.load(this.search.value.trim(), 0);
  }

  private async load(query: string, offset: number): Promise<void> {
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.root.dataset.state = 'loading';
    const params: Record<string, string | number> = { offset, limit: PAGE };
    if (query) params.q = query;
    let page: SeriesPage;
    try {
      page = await this.api.json<SeriesPage>(Api.path('series', params), controller.signal);
    } catch (err) {
      if (isAbort(err)) return;
      const e = err instanceof ApiError ? err : new ApiError(0, String(err));
      this.banner.textContent = e.status > 0 ? `${e.status}: ${e.message}` : e.message;
      this.banner.hidden = false;
      this.count.textContent = '';
      this.body.replaceChildren();
      this.more.hidden = true;
      this.root.dataset.state = 'error';
      return;
    }
    if (this.controller !== controller) return;
    this.banner.hidden = true;
    this.query = query;
    if (offset === 0) {
      this.body.replaceChildren();
      this.shown = 0;
      const url = query ? `?q=${encodeURIComponent(query)}` : location.pathname;
      history.replaceState(null, '', url);
    }
    for (const s of page.series) this.row(s);
    this.shown += page.series.length;
    this.count.textContent = query ? `${page.total} series match` : `${page.total} series`;
    this.more.hidden = this.shown >= page.total;
    this.root.dataset.state = 'ready';
    this.root.dataset.total = String(page.total);
  }

  private row(s: SeriesSummary): void {
    const row = this.body.insertRow();
    row.dataset.series = s.seriesUid;
    cell(row, personName(s.patientName), 'patient');
    cell(row, s.patientId ?? '', 'patient-id');
    cell(row, s.studyDate ?? '', 'study-date');
    cell(row, s.studyDescription ?? '', 'study');
    const series = cell(row, '', 'series');
    const link = document.createElement('a');
    link.href = `?series=${encodeURIComponent(s.seriesUid)}`;
    link.textContent = s.seriesDescription || s.seriesUid;
    link.title = s.seriesUid;
    series.appendChild(link);
    cell(row, s.modality ?? '', 'modality');
    cell(row, String(s.images), 'images');
    cell(row, `${s.rows} × ${s.columns}`, 'size');
  }
}
