// The warden dashboard: one stream of server-sent events for the chart
// and the lists that change each second, and the admin JSON API (session
// cookie plus CSRF header) for the rest. No framework, no build step.
'use strict';

const csrf = document.querySelector('meta[name=csrf]').content;
const $ = id => document.getElementById(id);
const COLORS = {
  ok: '#1d7a3a', refused_unregistered: '#7b5cc4', refused_revoked: '#c0489a', limited: '#e0a800',
  banned: '#b3261e', blocked: '#59636e', shed: '#e66b00', bad_request: '#2b8cbe', failed: '#111111',
};
const WINDOW = 3600; // seconds the server's ring holds
// The chart spans the samples held, rounded up to one of these, so the
// first minutes are not a sliver at the right of an empty hour.
const SPANS = [120, 300, 600, 900, 1800, 3600];

let outcomes = [], T = [], C = [];

function toast(msg, bad) {
  const t = $('toast');
  t.textContent = msg;
  t.style.background = bad ? '#b3261e' : '#1d232a';
  t.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove('show'), 3500);
}

// api calls the admin API as the logged-in page: the session cookie goes
// by itself, the CSRF token in its header.
async function api(method, path, body, type) {
  const headers = {'X-CSRF-Token': csrf};
  let payload = body;
  if (type) headers['Content-Type'] = type;
  else if (body !== undefined) { headers['Content-Type'] = 'application/json'; payload = JSON.stringify(body); }
  const r = await fetch(path, {method, headers, body: payload, credentials: 'same-origin'});
  if (r.status === 401) { location.href = '/ui/login'; throw new Error('session ended'); }
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.error || r.status + ' ' + r.statusText);
  return j;
}

function fmt(n) {
  if (n === undefined || n === null) return '–';
  if (n < 10 && n % 1) return n.toFixed(1);
  return Math.round(n).toLocaleString('en');
}

function rel(iso) {
  const s = Math.round((new Date(iso) - Date.now()) / 1000);
  const a = Math.abs(s);
  if (a < 2) return 'just now';
  const txt = a < 90 ? a + 's' : a < 5400 ? Math.round(a / 60) + 'm' : a < 172800 ? Math.round(a / 3600) + 'h' : Math.round(a / 86400) + 'd';
  return s >= 0 ? 'in ' + txt : txt + ' ago';
}

// row builds a table row; cells are text (never HTML) or nodes.
function row(cells) {
  const tr = document.createElement('tr');
  for (const c of cells) {
    const td = document.createElement('td');
    if (c && typeof c === 'object' && !(c instanceof Node)) {
      if (c.cls) td.className = c.cls;
      if (c.node) td.append(c.node); else td.textContent = c.text;
    } else if (c instanceof Node) td.append(c);
    else td.textContent = c === undefined ? '' : c;
    tr.append(td);
  }
  return tr;
}

function button(label, cls, onclick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.className = 'small ' + (cls || '');
  b.onclick = onclick;
  return b;
}

function fill(id, rows, empty) {
  const tb = $(id).tBodies[0];
  tb.replaceChildren(...rows);
  if (!rows.length) {
    const tr = row([empty]);
    tr.firstChild.colSpan = $(id).tHead.rows[0].cells.length;
    tr.firstChild.className = 'meta';
    tb.append(tr);
  }
}

// ---- the chart: requests per second by outcome over the last hour ----

function draw() {
  const cv = $('chart');
  const dpr = window.devicePixelRatio || 1;
  const w = cv.clientWidth, h = cv.clientHeight || 240;
  if (cv.width !== Math.round(w * dpr)) { cv.width = Math.round(w * dpr); cv.height = Math.round(h * dpr); }
  const g = cv.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const padL = 52, padR = 8, padT = 8, padB = 22;
  const now = T.length ? T[T.length - 1] : Math.floor(Date.now() / 1000);
  const held = T.length ? now - T[0] : 0;
  const span = SPANS.find(s => s >= held) || WINDOW;
  const t0 = now - span;
  $('span').textContent = span < 3600 ? '(last ' + span / 60 + ' minutes; up to an hour)' : '(last hour)';
  const shown = outcomes.map((_, o) => C.some(c => c[o] > 0));
  let top = 1;
  for (const c of C) for (let o = 0; o < c.length; o++) if (shown[o] && c[o] > top) top = c[o];
  const step = niceStep(top / 4);
  top = Math.ceil(top / step) * step;
  const x = t => padL + (t - t0) / span * (w - padL - padR);
  const y = v => padT + (1 - v / top) * (h - padT - padB);
  g.font = '11px system-ui,sans-serif';
  g.fillStyle = '#66707a';
  g.strokeStyle = '#e3e7eb';
  g.lineWidth = 1;
  g.textAlign = 'right';
  for (let v = 0; v <= top; v += step) {
    g.beginPath(); g.moveTo(padL, y(v) + .5); g.lineTo(w - padR, y(v) + .5); g.stroke();
    g.fillText(fmt(v), padL - 6, y(v) + 4);
  }
  g.textAlign = 'center';
  const most = w < 500 ? 4 : 8;
  const tick = [10, 20, 30, 60, 120, 300, 600, 900].find(s => span / s <= most) || 900;
  for (let s = span - span % tick; s >= 0; s -= tick) {
    const label = !s ? 'now' : span <= 300 ? '-' + s + 's' : '-' + s / 60 + 'm';
    g.fillText(label, Math.min(Math.max(x(now - s), padL + 10), w - padR - 12), h - 6);
  }
  g.lineWidth = 1.5;
  g.lineJoin = 'round';
  outcomes.forEach((name, o) => {
    if (!shown[o]) return;
    g.strokeStyle = COLORS[name] || '#000';
    g.beginPath();
    let prev = null;
    for (let i = 0; i < T.length; i++) {
      if (T[i] < t0) continue;
      const px = x(T[i]), py = y(C[i][o]);
      if (prev !== null && T[i] - prev > 2) g.moveTo(px, py); // a gap: the server was not sampling
      else if (prev === null) g.moveTo(px, py);
      else g.lineTo(px, py);
      prev = T[i];
    }
    g.stroke();
  });
  const last = C.length ? C[C.length - 1] : [];
  const total = last.reduce((a, b) => a + b, 0);
  $('rate-now').textContent = fmt(total);
  cv.dataset.samples = T.length;
  cv.dataset.lastTotal = total;
  const legend = outcomes.map((name, o) => {
    if (!shown[o]) return null;
    const s = document.createElement('span');
    const i = document.createElement('i');
    i.style.background = COLORS[name] || '#000';
    s.append(i, name.replace('_', ' ') + ' ' + fmt(last[o] || 0) + '/s');
    return s;
  }).filter(Boolean);
  $('legend').replaceChildren(...legend);
}

function niceStep(v) {
  const p = Math.pow(10, Math.floor(Math.log10(Math.max(v, 1))));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// ---- who is turned away now, and bans ----

async function ban(prefix, duration) {
  try {
    const b = await api('POST', '/api/guard/ban', {prefix, duration});
    toast('banned ' + b.prefix + ' until ' + new Date(b.until).toLocaleTimeString());
  } catch (e) { toast('ban ' + prefix + ': ' + e.message, true); }
}

async function unban(prefix) {
  try {
    await api('POST', '/api/guard/unban', {prefix});
    toast('unbanned ' + prefix);
  } catch (e) { toast('unban ' + prefix + ': ' + e.message, true); }
}

function renderTick(k) {
  fill('sources', k.sources.map(s => row([
    {text: s.key, cls: 'hash'}, {text: fmt(s.per_sec), cls: 'num'}, {text: s.state, cls: 'state-' + s.state}, s.org || '',
    s.state === 'banned' ? '' : button('ban 1h', 'danger', () => ban(s.key, '1h')),
  ])), 'No one turned away.');
  fill('prefixes', k.prefixes.map(s => row([
    {text: s.key, cls: 'hash'}, {text: fmt(s.per_sec), cls: 'num'}, {text: s.sources, cls: 'num'}, {text: s.state, cls: 'state-' + s.state},
    s.state === 'banned' ? '' : button('ban 1h', 'danger', () => ban(s.key, '1h')),
  ])), 'None.');
  $('ban-count').textContent = k.ban_count ? '(' + k.ban_count + ' running)' : '';
  fill('bans', k.bans.map(b => row([
    {text: b.prefix, cls: 'hash'}, rel(b.until), {text: b.strikes, cls: 'num opt'}, {text: fmt(b.dropped), cls: 'num opt'},
    button('unban', 'plain', () => unban(b.prefix)),
  ])), 'No bans.');
}

$('ban-form').onsubmit = e => {
  e.preventDefault();
  ban($('ban-prefix').value.trim(), $('ban-duration').value.trim());
};

// ---- episodes ----

async function loadEpisodes() {
  try {
    const r = await api('GET', '/api/episodes?n=20');
    fill('episodes', r.episodes.map(ep => {
      const a = document.createElement('a');
      a.href = '/api/episodes/' + encodeURIComponent(ep.id);
      a.target = '_blank';
      a.rel = 'noopener';
      a.textContent = ep.source;
      return row([{node: a, cls: 'hash'}, ep.kind, {text: ep.state, cls: 'state-' + ep.state}, {text: fmt(ep.peak_per_sec), cls: 'num'}, {text: fmt(ep.total), cls: 'num opt'}, {text: rel(ep.first_seen), cls: 'opt'}]);
    }), 'No episodes.');
    $('episodes-note').textContent = 'Each source links to its episode record; the full report: warden evidence report.';
  } catch (e) {
    fill('episodes', [], e.message);
  }
}

// ---- the registry ----

const hexRe = /^([0-9a-f]{40}|[0-9a-f]{64})$/i;

async function loadRegistry() {
  const q = $('search').value.trim();
  const state = $('search-state').value;
  try {
    let list;
    if (hexRe.test(q)) {
      list = await api('GET', '/api/torrents/' + q.toLowerCase()).then(e => [e], () => []);
    } else {
      const p = new URLSearchParams({limit: '50'});
      if (q) p.set('name', q);
      if (state) p.set('state', state);
      list = (await api('GET', '/api/torrents?' + p)).torrents;
    }
    fill('registry', list.map(registryRow), q ? 'Nothing matches.' : 'The registry is empty.');
  } catch (e) { toast('registry: ' + e.message, true); }
}

function registryRow(e) {
  const hash = e.v1 || e.v2;
  const act = document.createElement('span');
  const tr = row([{text: e.name || '(no name)', cls: 'name'}, {text: hash, cls: 'hash'},
    {text: e.state + (e.reason ? ': ' + e.reason : ''), cls: 'state state-' + e.state}, {text: rel(e.changed_at), cls: 'opt'}, {node: act, cls: 'act'}]);
  tr.dataset.hash = hash;
  if (e.state === 'active') {
    act.append(button('revoke', 'danger revoke', () => {
      const reason = document.createElement('input');
      reason.placeholder = 'reason';
      reason.className = 'reason';
      reason.size = 14;
      const ok = button('confirm', 'danger confirm', async () => {
        if (!reason.value.trim()) { reason.focus(); toast('give a reason', true); return; }
        try {
          await api('POST', '/api/torrents/' + hash + '/revoke', {reason: reason.value.trim()});
          toast('revoked ' + (e.name || hash));
        } catch (err) { toast('revoke: ' + err.message, true); }
        loadRegistry();
      });
      act.replaceChildren(reason, ok, button('cancel', 'plain', loadRegistry));
      reason.focus();
    }));
  } else {
    act.append(button('restore', 'plain', async () => {
      try { await api('POST', '/api/torrents/' + hash + '/restore'); toast('restored ' + (e.name || hash)); } catch (err) { toast('restore: ' + err.message, true); }
      loadRegistry();
    }));
  }
  return tr;
}

let searchTimer;
$('search').oninput = () => { clearTimeout(searchTimer); searchTimer = setTimeout(loadRegistry, 250); };
$('search-state').onchange = loadRegistry;
$('search-form').onsubmit = e => { e.preventDefault(); loadRegistry(); };

$('add-form').onsubmit = async e => {
  e.preventDefault();
  const file = $('add-file').files[0];
  try {
    const t = file
      ? await api('POST', '/ui/api/parse', await file.arrayBuffer(), 'application/x-bittorrent')
      : await api('POST', '/ui/api/parse', $('add-text').value, 'text/plain; charset=utf-8');
    if ($('add-name').value.trim()) t.name = $('add-name').value.trim();
    const r = await api('POST', '/api/torrents', {torrents: [t]});
    toast(r.added ? 'added ' + (t.name || t.v1 || t.v2) : 'already registered');
    $('add-form').reset();
    $('search').value = t.v1 || t.v2;
    loadRegistry();
  } catch (err) { toast('add: ' + err.message, true); }
};

// ---- configuration and the evidence log ----

async function loadOverview() {
  try {
    const o = await api('GET', '/ui/api/overview');
    $('config').textContent = o.config;
    const c = o.checkpoint;
    $('checkpoint').textContent = c
      ? 'latest checkpoint #' + c.seq + ': ' + c.size + ' records, signed ' + rel(c.time) + '\nroot ' + c.root + '\n\n' + c.note
      : 'no checkpoint: ' + o.checkpoint_error;
  } catch (e) { $('checkpoint').textContent = e.message; }
}

// ---- the stream ----

function live(on) {
  $('live').textContent = on ? 'live' : 'reconnecting…';
  $('live').classList.toggle('on', on);
}

const es = new EventSource('/ui/events');
es.addEventListener('history', e => {
  const h = JSON.parse(e.data);
  outcomes = h.outcomes; T = h.t; C = h.c;
  live(true);
  draw();
});
es.addEventListener('tick', e => {
  const k = JSON.parse(e.data);
  if (T.length && k.t <= T[T.length - 1]) { T[T.length - 1] = k.t; C[C.length - 1] = k.c; } else { T.push(k.t); C.push(k.c); }
  while (T.length > WINDOW) { T.shift(); C.shift(); }
  live(true);
  draw();
  renderTick(k);
});
es.onerror = () => { live(false); fetch('/ui/api/overview', {credentials: 'same-origin'}).then(r => { if (r.status === 401) location.href = '/ui/login'; }, () => {}); };
window.addEventListener('resize', draw);

loadRegistry();
loadEpisodes();
loadOverview();
setInterval(loadEpisodes, 5000);
setInterval(loadOverview, 60000);
