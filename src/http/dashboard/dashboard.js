// The livekit-recorder dashboard. Plain JS, no build step: everything comes from the REST API.
// - The token (API_TOKEN) is asked for once, kept in sessionStorage and sent only as
//   `Authorization: Bearer`. The player gets a signed link for one file from
//   `.../link` (a <video> element cannot send headers); the token never goes into a URL.
// - Live recordings are polled every second (one GET /recordings per live status); the bitrate
//   is computed here from the growth of `bytes` over the last 5 s.
// - The history is GET /recordings with the filters, paged with the X-Next-Cursor header.
// Every text from the API goes into the page as text (textContent), never as HTML.
'use strict';

const TOKEN_KEY = 'livekit-recorder.api-token';
const LIVE_STATUSES = ['pending', 'active', 'finalizing', 'uploading'];
const WRITING = ['pending', 'active', 'finalizing'];
const POLL_MS = 1000;
const RATE_WINDOW_MS = 5000;
const PAGE_SIZE = 20;

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem(TOKEN_KEY) || '';
let polling = false;
const rows = new Map(); // live recording id -> its <tr>
const samples = new Map(); // live recording id -> [{t, bytes}] within RATE_WINDOW_MS
const history = { filters: '', cursors: [''], page: 0, next: null };

class Unauthorized extends Error {}

/** One API call: `{data, headers}`, or throws with the daemon's `error`. */
async function api(method, path, body) {
  const headers = {};
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method, headers, cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => null);
  if (res.status === 401) throw new Unauthorized((data && data.error) || 'unauthorized');
  if (!res.ok) throw new Error((data && data.error) || `${res.status} ${res.statusText}`);
  return { data, headers: res.headers };
}

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'onclick') e.onclick = v;
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  e.append(...children.filter((c) => c !== undefined && c !== null));
  return e;
}

function fmtBytes(n) {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let i = -1;
  do { n /= 1000; i++; } while (n >= 1000 && i < units.length - 1);
  return `${n.toFixed(n < 10 ? 2 : 1)} ${units[i]}`;
}
const fmtSeconds = (s) => (s >= 3600 ? `${Math.floor(s / 3600)} h ` : '')
  + (s >= 60 ? `${Math.floor((s % 3600) / 60)} min ` : '') + `${(s % 60).toFixed(1)} s`;
const fmtLost = (r) => `${r.frames_lost}` + (r.frames_dropped ? ` (+${r.frames_dropped} dropped: disk behind)` : '');
const fmtTime = (t) => (t ? new Date(t).toLocaleString() : '');
const fmtTracks = (r) => r.tracks.map((t) => `${t.kind} ${t.codec}`).join(', ')
  + r.skipped_tracks.map((t) => ` (skipped ${t.kind} ${t.mime}: ${t.reason})`).join('');

function setStatusCell(td, status) {
  td.textContent = status;
  td.className = `status status-${status}`;
}

// ---- token ----

function askToken(why) {
  polling = false;
  token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  $('main').hidden = true;
  $('forget').hidden = true;
  $('token-form').hidden = false;
  $('token-error').textContent = why || '';
  $('conn').textContent = 'token needed';
  $('token').focus();
}

/** Checks the token (or that none is needed) and shows the dashboard. */
async function connect() {
  try {
    await api('GET', '/recordings?limit=1');
  } catch (e) {
    if (e instanceof Unauthorized) return askToken(token ? `refused: ${e.message}` : '');
    $('conn').textContent = `cannot reach the daemon: ${e.message}`;
    return setTimeout(connect, 2000);
  }
  $('token-form').hidden = true;
  $('main').hidden = false;
  $('forget').hidden = !token;
  loadHistory();
  if (!polling) {
    polling = true;
    pollLive();
  }
}

// ---- live recordings ----

/** Bits per second over the last RATE_WINDOW_MS of samples, or null. */
function bitrate(id, bytes) {
  const now = performance.now();
  const s = (samples.get(id) || []).filter((p) => now - p.t <= RATE_WINDOW_MS);
  s.push({ t: now, bytes });
  samples.set(id, s);
  const dt = (s[s.length - 1].t - s[0].t) / 1000;
  return dt >= 0.9 ? ((s[s.length - 1].bytes - s[0].bytes) * 8) / dt : null;
}

function liveRow(r) {
  const cells = {};
  for (const name of ['status', 'room', 'participant', 'tracks', 'running', 'bytes', 'bitrate', 'lost', 'parts', 'error']) {
    cells[name] = el('td', { class: name });
  }
  for (const n of ['running', 'bytes', 'bitrate', 'lost']) cells[n].classList.add('num');
  cells.room.textContent = r.room;
  cells.participant.textContent = r.participant;
  const stop = el('button', { type: 'button', class: 'stop', onclick: () => stopRecording(r.id, stop) }, 'Stop');
  const tr = el('tr', { 'data-id': r.id, 'data-participant': r.participant, 'data-room': r.room },
    ...Object.values(cells), el('td', {}, stop));
  tr.cells_ = cells;
  return tr;
}

function updateLiveRow(tr, r) {
  const c = tr.cells_;
  setStatusCell(c.status, r.status);
  c.tracks.textContent = fmtTracks(r);
  c.running.textContent = fmtSeconds(Math.max(0, (Date.now() - Date.parse(r.started_at)) / 1000));
  c.bytes.textContent = fmtBytes(r.bytes);
  c.bytes.dataset.bytes = r.bytes;
  const bps = bitrate(r.id, r.bytes);
  c.bitrate.textContent = bps === null ? '…' : `${(bps / 1000).toFixed(0)} kbit/s`;
  c.lost.textContent = fmtLost(r);
  c.error.textContent = r.error || '';
  const partsKey = JSON.stringify([r.status, r.parts, r.files, r.outputs]);
  if (c.parts.dataset.key !== partsKey) {
    c.parts.dataset.key = partsKey;
    c.parts.replaceChildren(partsList(r));
  }
  tr.querySelector('button.stop').disabled = !WRITING.includes(r.status);
}

async function pollLive() {
  if (!polling) return;
  try {
    const pages = await Promise.all(LIVE_STATUSES.map((s) => api('GET', `/recordings?status=${s}&limit=1000`)));
    const live = pages.flatMap((p) => p.data).sort((a, b) => b.started_at.localeCompare(a.started_at));
    const tbody = $('live').tBodies[0];
    const seen = new Set(live.map((r) => r.id));
    let ended = false;
    for (const [id, tr] of rows) {
      if (!seen.has(id)) { tr.remove(); rows.delete(id); samples.delete(id); ended = true; }
    }
    live.forEach((r, i) => {
      let tr = rows.get(r.id);
      if (!tr) { tr = liveRow(r); rows.set(r.id, tr); }
      updateLiveRow(tr, r);
      // rows stay in place unless the order changed (a moved row would lose a click under way)
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
    });
    $('live-count').textContent = `(${live.length})`;
    $('conn').textContent = `updated ${new Date().toLocaleTimeString()}`;
    if (ended) loadHistory();
  } catch (e) {
    if (e instanceof Unauthorized) return askToken(`refused: ${e.message}`);
    $('conn').textContent = `cannot reach the daemon: ${e.message}`;
  }
  setTimeout(pollLive, POLL_MS);
}

async function stopRecording(id, button) {
  button.disabled = true;
  try {
    const { data } = await api('POST', '/recordings/stop', { id });
    $('start-result').textContent = `stopped ${data.id}: ${data.status}${data.error ? ` (${data.error})` : ''}`;
  } catch (e) {
    $('start-result').textContent = `stop ${id} failed: ${e.message}`;
    button.disabled = false;
  }
}

// ---- parts, files and the player ----

const basename = (p) => p.split('/').pop();

/** Each part with its files: ▶ for a closed file on local disk, its S3 object once uploaded. */
function partsList(r) {
  const ul = el('ul');
  for (const p of r.parts) {
    const li = el('li', { class: 'part' }, `#${p.part} ${fmtSeconds(p.duration_s)} ${fmtBytes(p.bytes)} `);
    const closed = p.ended_at || !WRITING.includes(r.status);
    p.files.forEach((f, i) => {
      const s3 = r.outputs.find((o) => o.endsWith('/' + basename(f)));
      if (closed && r.files.includes(f)) {
        li.append(el('button', {
          type: 'button', class: 'play', title: f, 'data-part': p.part, 'data-file': i,
          onclick: () => play(r, p.part, i, f),
        }, `▶ ${basename(f)}`), ' ');
      } else if (s3) {
        li.append(el('span', { class: 's3', title: 'uploaded to S3' }, s3), ' ');
      } else {
        li.append(el('span', { class: 'muted', title: f }, `${basename(f)} (${closed ? 'not on disk' : 'writing'})`), ' ');
      }
    });
    ul.append(li);
  }
  return ul;
}

async function play(r, part, file, path) {
  const title = $('player-title');
  try {
    const { data } = await api('GET', `/recordings/${encodeURIComponent(r.id)}/parts/${part}/files/${file}/link`);
    title.textContent = `${r.room} / ${r.participant}, part ${part}: ${path} (${data.content_type})`;
    const video = $('player');
    video.src = data.url;
    video.play().catch(() => {}); // autoplay may be refused: the controls are there
  } catch (e) {
    if (e instanceof Unauthorized) return askToken(`refused: ${e.message}`);
    title.textContent = `cannot play ${path}: ${e.message}`;
  }
}

// ---- history ----

async function loadHistory() {
  const q = new URLSearchParams(history.filters);
  q.set('limit', PAGE_SIZE);
  const cursor = history.cursors[history.page];
  if (cursor) q.set('cursor', cursor);
  try {
    const { data, headers } = await api('GET', `/recordings?${q}`);
    history.next = headers.get('X-Next-Cursor');
    const tbody = $('history').tBodies[0];
    tbody.replaceChildren(...data.map((r) => {
      const status = el('td');
      setStatusCell(status, r.status);
      return el('tr', { 'data-id': r.id, 'data-participant': r.participant, 'data-room': r.room },
        status, el('td', {}, r.room), el('td', {}, r.participant),
        el('td', {}, fmtTime(r.started_at)), el('td', {}, fmtTime(r.ended_at)),
        el('td', { class: 'num' }, fmtSeconds(r.duration_s)),
        el('td', { class: 'num bytes', 'data-bytes': r.bytes }, fmtBytes(r.bytes)),
        el('td', { class: 'num' }, fmtLost(r)),
        el('td', {}, partsList(r)),
        el('td', { class: 'error' }, r.error || ''));
    }));
    $('page').textContent = `page ${history.page + 1}${data.length ? '' : ' (empty)'}`;
    $('prev').disabled = history.page === 0;
    $('first').disabled = history.page === 0;
    $('next').disabled = !history.next;
  } catch (e) {
    if (e instanceof Unauthorized) return askToken(`refused: ${e.message}`);
    $('page').textContent = `cannot list: ${e.message}`;
  }
}

// ---- wiring ----

$('token-form').onsubmit = (ev) => {
  ev.preventDefault();
  token = $('token').value.trim();
  $('token').value = '';
  sessionStorage.setItem(TOKEN_KEY, token);
  connect();
};
$('forget').onclick = () => askToken('token forgotten');

$('start-form').onsubmit = async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const body = {};
  for (const k of ['room', 'participant', 'profile', 'layout', 'h264_container']) body[k] = f.get(k);
  if (f.get('filename').trim()) body.filename = f.get('filename').trim();
  try {
    const { data } = await api('POST', '/recordings/start', body);
    $('start-result').textContent = `recording ${data.id}: ${data.status}`;
  } catch (e) {
    if (e instanceof Unauthorized) return askToken(`refused: ${e.message}`);
    $('start-result').textContent = `start failed: ${e.message}`;
  }
};

$('history-form').onsubmit = (ev) => {
  ev.preventDefault();
  const q = new URLSearchParams();
  for (const [k, v] of new FormData(ev.target)) if (v.trim()) q.set(k, v.trim());
  Object.assign(history, { filters: q.toString(), cursors: [''], page: 0 });
  loadHistory();
};
$('first').onclick = () => { history.page = 0; loadHistory(); };
$('prev').onclick = () => { history.page = Math.max(0, history.page - 1); loadHistory(); };
$('next').onclick = () => {
  if (!history.next) return;
  history.cursors[history.page + 1] = history.next;
  history.page += 1;
  loadHistory();
};
$('refresh').onclick = () => loadHistory();

connect();
