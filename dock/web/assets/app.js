// bodydock dashboard: renders /api/v1/status, live over Server-Sent Events, in Dutch or English.
'use strict';

const T = {
  en: {
    connecting: 'connecting', live: 'live', offline: 'reconnecting', login: 'Log in', logout: 'Log out', user: 'User',
    password: 'Password', cancel: 'Cancel', confirm: 'Confirm', uplink: 'Uplink to storage', queue_items: 'Waiting',
    queue_bytes: 'Size', queue_oldest: 'Oldest waiting', stored: 'Stored since start', retries: 'Failed attempts',
    pulled_rate: 'pulled', stored_rate: 'stored', last_hour: 'MB/s, last hour', retry: 'Retry now', pause: 'Pause uploads',
    resume: 'Resume uploads', spool: 'Spool', quarantine: 'Quarantine', events: 'Last events',
    reason: 'Reason (written to the audit log)', power_cycle: 'Power-cycle', revoke: 'Revoke camera', slot: 'Slot',
    release: 'Release (pull and check again)', keep: 'Keep on camera', kept: 'kept on camera', segment: 'segment',
    left: 'left', of: 'of', used: 'used', free: 'free on disk', limit: 'limit', none: 'none', paused: 'paused',
    login_failed: 'Login failed', logged_in_as: 'logged in as', wrong: 'wrong user name or password',
    confirm_power: 'Power-cycle slot {slot}? The camera is switched off and on; its transfer resumes.',
    confirm_revoke: 'Revoke camera {serial} at this dock? From its next docking it only charges.',
    confirm_release: 'Release segment {seq} of {serial}? It is pulled and checked again at the next docking.',
    confirm_keep: 'Keep segment {seq} of {serial} on the camera? It stays there, unerased.',
    s_empty: 'empty', s_charging: 'charging, safe to take', s_authenticating: 'identifying', s_syncing: 'syncing',
    s_waiting_uplink: 'waiting for uplink', s_done: 'done, safe to take', s_attention: 'attention',
    u_idle: 'idle', u_uploading: 'uploading', u_retrying: 'retrying', u_held: 'held: needs an admin',
  },
  nl: {
    connecting: 'verbinden', live: 'live', offline: 'opnieuw verbinden', login: 'Inloggen', logout: 'Uitloggen',
    user: 'Gebruiker', password: 'Wachtwoord', cancel: 'Annuleren', confirm: 'Bevestigen', uplink: 'Verbinding met opslag',
    queue_items: 'Wachtend', queue_bytes: 'Omvang', queue_oldest: 'Langst wachtend', stored: 'Opgeslagen sinds start',
    retries: 'Mislukte pogingen', pulled_rate: 'opgehaald', stored_rate: 'opgeslagen', last_hour: 'MB/s, laatste uur',
    retry: 'Nu opnieuw', pause: 'Uploads pauzeren', resume: 'Uploads hervatten', spool: 'Tussenopslag',
    quarantine: 'Quarantaine', events: 'Laatste gebeurtenissen', reason: 'Reden (komt in het auditlog)',
    power_cycle: 'Stroom uit/aan', revoke: 'Camera intrekken', slot: 'Plek',
    release: 'Vrijgeven (opnieuw ophalen en controleren)', keep: 'Op camera houden', kept: 'op camera gehouden',
    segment: 'segment', left: 'resterend', of: 'van', used: 'in gebruik', free: 'vrij op schijf', limit: 'grens',
    none: 'geen', paused: 'gepauzeerd', login_failed: 'Inloggen mislukt', logged_in_as: 'ingelogd als',
    wrong: 'onjuiste gebruikersnaam of wachtwoord',
    confirm_power: 'Stroom van plek {slot} uit en aan zetten? De overdracht gaat daarna verder.',
    confirm_revoke: 'Camera {serial} op dit dock intrekken? Vanaf de volgende keer laadt hij alleen op.',
    confirm_release: 'Segment {seq} van {serial} vrijgeven? Het wordt bij de volgende keer opnieuw opgehaald en gecontroleerd.',
    confirm_keep: 'Segment {seq} van {serial} op de camera houden? Het blijft daar staan, niet gewist.',
    s_empty: 'leeg', s_charging: 'laadt op, mag mee', s_authenticating: 'identificeren', s_syncing: 'synchroniseren',
    s_waiting_uplink: 'wacht op verbinding', s_done: 'klaar, mag mee', s_attention: 'aandacht nodig',
    u_idle: 'rust', u_uploading: 'uploaden', u_retrying: 'opnieuw proberen', u_held: 'gestopt: beheerder nodig',
  },
};

const $ = (sel, root = document) => root.querySelector(sel);
let lang = pickLanguage();
let last = null;          // the newest status
let session = { user: null };
let pending = null;       // the action waiting for a reason

function pickLanguage() {
  const saved = localStorage.getItem('bodydock-lang');
  if (saved === 'nl' || saved === 'en') return saved;
  for (const l of navigator.languages || [navigator.language || 'en']) {
    if (l.toLowerCase().startsWith('nl')) return 'nl';
    if (l.toLowerCase().startsWith('en')) return 'en';
  }
  return 'en';
}

function t(key, vars) {
  let s = (T[lang] && T[lang][key]) || T.en[key] || key;
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.replace('{' + k + '}', v);
  return s;
}

function setLanguage(l) {
  lang = l;
  localStorage.setItem('bodydock-lang', l);
  document.documentElement.lang = l;
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  $('#lang-nl').setAttribute('aria-pressed', String(l === 'nl'));
  $('#lang-en').setAttribute('aria-pressed', String(l === 'en'));
  if (last) render(last);
}

function mb(bytes) {
  if (bytes >= 1e9) return (bytes / 1e9).toFixed(2) + ' GB';
  if (bytes >= 1e6) return (bytes / 1e6).toFixed(1) + ' MB';
  if (bytes >= 1e3) return (bytes / 1e3).toFixed(0) + ' kB';
  return bytes + ' B';
}

function duration(s) {
  if (s === null || s === undefined) return '-';
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

// --- LEDs: the same timings as the dock's own lights -------------------------------------
function blinkAll() {
  const now = Date.now();
  for (const led of document.querySelectorAll('.led')) {
    const on = Number(led.dataset.on || 0), off = Number(led.dataset.off || 0);
    const lit = on > 0 && led.dataset.colour !== 'off' && (off === 0 || now % (on + off) < on);
    led.classList.toggle('lit', lit);
  }
}

// --- rendering ---------------------------------------------------------------------------
function tileFor(slot) {
  let tile = document.querySelector(`.tile[data-slot="${slot}"]`);
  if (tile) return tile;
  tile = $('#tile-template').content.firstElementChild.cloneNode(true);
  tile.dataset.slot = slot;
  $('.power-cycle', tile).addEventListener('click', () => askReason('power-cycle', { slot }, t('confirm_power', { slot }), false));
  $('.revoke', tile).addEventListener('click', () => {
    const serial = tile.dataset.serial;
    if (serial) askReason('revoke', { serial }, t('confirm_revoke', { serial }), true);
  });
  $('#slots').appendChild(tile);
  return tile;
}

function renderSlot(s) {
  const tile = tileFor(s.slot);
  tile.dataset.state = s.state;
  tile.dataset.colour = s.led.colour;
  tile.dataset.serial = s.serial || '';
  tile.setAttribute('aria-label', `${t('slot')} ${s.slot}: ${t('s_' + s.state)}`);
  const led = $('.led', tile);
  led.dataset.colour = s.led.colour;
  led.dataset.on = s.led.on_ms;
  led.dataset.off = s.led.off_ms;
  led.title = `${s.led.colour}, ${s.led.pattern}`;
  $('.slot-no', tile).textContent = s.slot;
  $('.state', tile).textContent = t('s_' + s.state);
  $('.serial', tile).textContent = s.serial || '';
  $('.officer', tile).textContent = s.officer || '';
  const batt = $('.battery', tile);
  batt.hidden = s.battery === null;
  if (s.battery !== null) {
    $('.battery-fill', tile).style.width = s.battery + '%';
    $('.battery-text', tile).textContent = s.battery + '%' + (s.charging ? ' \u26A1' : '') + (s.charge_stopped_hot ? ' \u2668' : '') +
      (s.temperature_c !== null ? ' \u00B7 ' + s.temperature_c.toFixed(1) + ' \u00B0C' : '');
  }
  const total = s.bytes_total, done = s.bytes_done;
  const pct = total > 0 ? Math.min(100, (100 * done) / total) : (s.state === 'done' || s.state === 'charging' ? 100 : 0);
  $('.bar', tile).style.width = pct.toFixed(1) + '%';
  const prog = $('.progress', tile);
  prog.setAttribute('aria-valuenow', pct.toFixed(0));
  prog.dataset.done = done;
  $('.done-bytes', tile).textContent = total > 0 ? `${mb(done)} ${t('of')} ${mb(total)}` : '';
  $('.rate', tile).textContent = s.mbps > 0 ? s.mbps.toFixed(1) + ' MB/s' : '';
  $('.eta', tile).textContent = s.eta_s !== null ? duration(s.eta_s) + ' ' + t('left') : '';
  $('.detail', tile).textContent = s.alert ? '\u26A0 ' + s.alert : s.detail;
}

function renderChart(history) {
  // The last hour, or less while the dock has run less: a young dock's chart is not a dot.
  const w = 360, h = 80, now = Date.now();
  const span = history.length ? Math.min(3600 * 1000, Math.max(120 * 1000, now - history[0][0] + 10000)) : 3600 * 1000;
  let max = 1;
  for (const [, p, s] of history) max = Math.max(max, p, s);
  const line = (idx) => history.map((row) => {
    const x = Math.max(0, w - ((now - row[0]) / span) * w);
    const y = h - (row[idx] / max) * (h - 4) - 2;
    return x.toFixed(1) + ',' + y.toFixed(1);
  }).join(' ');
  $('#chart-pulled').setAttribute('points', line(1));
  $('#chart-stored').setAttribute('points', line(2));
  $('#chart-max').textContent = history.length ? `(max ${max.toFixed(1)})` : '';
}

function render(st) {
  last = st;
  $('#dock-id').textContent = st.dock.id;
  for (const s of st.slots) renderSlot(s);
  const q = st.queue, u = st.uplink, sp = st.spool;
  $('#queue-items').textContent = q.items;
  $('#queue-bytes').textContent = mb(q.bytes);
  $('#queue-oldest').textContent = q.oldest_waiting_s === null ? t('none') : duration(q.oldest_waiting_s);
  $('#stored').textContent = `${u.stored_segments} \u00B7 ${mb(u.stored_bytes)}`;
  $('#retries').textContent = u.retries;
  $('#uplink-state').textContent = t('u_' + u.state) + (u.paused ? ' (' + t('paused') + ')' : '');
  $('#uplink-dot').dataset.state = u.paused ? 'retrying' : u.state;
  $('#uplink-alert').textContent = [u.alert, u.clock_alert].filter(Boolean).join(' \u00B7 ');
  renderChart(u.history);
  const cap = sp.limit_bytes > 0 ? sp.limit_bytes : sp.used_bytes + sp.free_bytes;
  const frac = cap > 0 ? sp.used_bytes / cap : 0;
  $('#spool-bar').style.width = (100 * Math.min(1, frac)).toFixed(1) + '%';
  $('#spool-bar').classList.toggle('high', frac > 0.8);
  $('#spool-text').textContent = `${mb(sp.used_bytes)} ${t('used')}` + (sp.limit_bytes > 0 ? ` \u00B7 ${t('limit')} ${mb(sp.limit_bytes)}` : '') +
    ` \u00B7 ${mb(sp.free_bytes)} ${t('free')}`;
  renderQuarantine(st.quarantine || []);
  const ol = $('#events');
  ol.replaceChildren(...st.events.slice().reverse().map((e) => {
    const li = document.createElement('li');
    li.dataset.level = e.level;
    const time = document.createElement('time');
    time.textContent = new Date(e.time_ms).toLocaleTimeString(lang === 'nl' ? 'nl-NL' : 'en-GB');
    li.append(time, document.createTextNode(e.text));
    return li;
  }));
  showAdmin();
}

function renderQuarantine(list) {
  $('#quarantine-panel').hidden = list.length === 0;
  const ul = $('#quarantine');
  ul.replaceChildren(...list.map((q) => {
    const li = document.createElement('li');
    li.dataset.serial = q.serial;
    li.dataset.segment = q.segment;
    const text = document.createElement('span');
    text.textContent = `${q.serial} ${t('segment')} ${q.segment}: ${q.reason}` + (q.kept ? ` (${t('kept')})` : '');
    li.append(text);
    if (!q.kept) {
      const div = document.createElement('div');
      div.className = 'admin';
      div.hidden = !isAdmin();
      for (const decision of ['release', 'keep']) {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'quarantine-' + decision;
        b.textContent = t(decision);
        b.addEventListener('click', () => askReason('quarantine', { serial: q.serial, segment: q.segment, decision },
          t('confirm_' + decision, { seq: q.segment, serial: q.serial }), true));
        div.append(b);
      }
      li.append(div);
    }
    return li;
  }));
}

// --- live updates ------------------------------------------------------------------------
function connect() {
  const live = $('#live');
  const es = new EventSource('/api/v1/events');
  es.addEventListener('status', (ev) => {
    live.className = 'live on';
    live.textContent = t('live');
    render(JSON.parse(ev.data));
  });
  es.onerror = () => {
    live.className = 'live off';
    live.textContent = t('offline');
  };
}

// --- login and admin actions -------------------------------------------------------------
function isAdmin() { return session.role === 'admin'; }

function showAdmin() {
  for (const el of document.querySelectorAll('.admin')) el.hidden = !isAdmin();
  $('#login-open').hidden = !!session.user;
  $('#logout').hidden = !session.user;
  $('#whoami').textContent = session.user ? `${t('logged_in_as')} ${session.user}` : '';
}

async function api(path, body) {
  const headers = { 'Content-Type': 'application/json' };
  if (session.csrf) headers['X-CSRF-Token'] = session.csrf;
  const res = await fetch(path, { method: 'POST', headers, body: JSON.stringify(body || {}), credentials: 'same-origin' });
  let data = {};
  try { data = await res.json(); } catch (e) { /* empty answer */ }
  return { ok: res.ok, status: res.status, data };
}

function toast(text) {
  const el = $('#toast');
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 4000);
}

async function act(name, body) {
  const r = await api('/api/v1/actions/' + name, body);
  toast(r.ok ? r.data.message : (r.data.error || ('HTTP ' + r.status)));
  if (r.status === 401) { session = { user: null }; showAdmin(); }
}

function askReason(name, body, title, required) {
  pending = { name, body };
  $('#reason-title').textContent = title;
  $('#reason-text').value = '';
  $('#reason-text').required = required;
  $('#reason-dialog').showModal();
}

async function loadSession() {
  const res = await fetch('/api/v1/session', { credentials: 'same-origin' });
  session = await res.json();
  showAdmin();
}

function setup() {
  $('#lang-nl').addEventListener('click', () => setLanguage('nl'));
  $('#lang-en').addEventListener('click', () => setLanguage('en'));
  $('#login-open').addEventListener('click', () => { $('#login-form').hidden = false; $('#login-user').focus(); });
  $('#login-cancel').addEventListener('click', () => { $('#login-form').hidden = true; });
  $('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('#login-error').textContent = '';
    const r = await api('/api/v1/login', { user: $('#login-user').value, password: $('#login-password').value });
    $('#login-password').value = '';
    if (!r.ok) { $('#login-error').textContent = r.status === 401 ? t('wrong') : (r.data.error || t('login_failed')); return; }
    session = r.data;
    $('#login-form').hidden = true;
    showAdmin();
    if (last) render(last);
  });
  $('#logout').addEventListener('click', async () => { await api('/api/v1/logout'); session = { user: null }; showAdmin(); });
  $('#action-retry').addEventListener('click', () => act('retry'));
  $('#action-pause').addEventListener('click', () => askReason('pause', {}, t('pause'), false));
  $('#action-resume').addEventListener('click', () => act('resume'));
  $('#reason-cancel').addEventListener('click', () => { $('#reason-dialog').close(); pending = null; });
  $('#reason-form').addEventListener('submit', () => {
    if (!pending) return;
    const reason = $('#reason-text').value.trim();
    const { name, body } = pending;
    pending = null;
    act(name, Object.assign({}, body, reason ? { reason } : {}));
  });
  setLanguage(lang);
  loadSession().catch(() => {});
  fetch('/api/v1/status', { credentials: 'same-origin' }).then((r) => (r.ok ? r.json() : null)).then((st) => { if (st) render(st); }).catch(() => {});
  connect();
  setInterval(blinkAll, 50);
}

document.addEventListener('DOMContentLoaded', setup);
