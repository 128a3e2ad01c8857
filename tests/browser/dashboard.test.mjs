// The dock's web page in a real browser: Debian's Chromium, headless, driven by playwright-core,
// against `dockd demo --web 127.0.0.1:0` with four emulated cameras. Checks that the tiles
// appear, progress advances live without a reload, a slot becomes safe to take, the Dutch/English
// switch works, an admin logs in, pauses and resumes uploads and both actions are in the audit
// log, the phone layout does not scroll sideways, the page asks nothing of any host but the dock
// and logs no errors. Saves desktop and phone screenshots, and prints the page's weight on first
// load and the server's CPU while five pages follow the live updates.
//
// Environment: DOCKD (the dockd binary; default build/asan/dock/dockd), BROWSER_ARTEFACTS (where
// screenshots and the demo's log go; default a temporary folder), CHROMIUM (default
// /usr/bin/chromium). Last line: "N passed, N failed"; exit status 1 on any failure.
import { chromium } from 'playwright-core';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const DOCKD = process.env.DOCKD || path.resolve(here, '../../build/asan/dock/dockd');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTEFACTS = process.env.BROWSER_ARTEFACTS || fs.mkdtempSync(path.join(os.tmpdir(), 'bodydock-browser-artefacts-'));
const CAMERAS = 4;
const DONE_WITHIN_MS = 120_000;
const WATCHDOG_MS = 270_000;  // under ctest's 300 s, so the demo is always stopped by us
const SAFE = ['done', 'charging'];

let passed = 0, failed = 0;
let finishing = false, interrupted = false;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bodydock-browser-'));
let demo = null;           // { proc, url, origin, log, exited }
let browser = null;
const requests = [];       // every URL any page asked for
const consoleErrors = [];  // console errors and uncaught exceptions, with the page they came from
let expectedLoginErrors = 0;  // the browser logs a refused login (401) as a console error
const figures = [];

function log(line) { process.stdout.write(line + '\n'); }

async function check(name, fn, always = false) {
  if (interrupted && !always) return false;  // the summary is on its way
  const t0 = Date.now();
  try {
    const note = await fn();
    passed++;
    log(`PASS ${name}${note ? ` (${note})` : ''} [${((Date.now() - t0) / 1000).toFixed(1)} s]`);
    return true;
  } catch (e) {
    failed++;
    log(`FAIL ${name}: ${e && e.message ? e.message.split('\n')[0] : e} [${((Date.now() - t0) / 1000).toFixed(1)} s]`);
    return false;
  }
}

function assert(cond, msg) { if (!cond) throw new Error(msg); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- the demo ------------------------------------------------------------------------------
function startDemo() {
  // Four cameras with 8 x 12 MiB each and small chunks: the transfer lasts long enough in a
  // sanitizer build to watch progress move on the page.
  const args = ['demo', '--cameras', String(CAMERAS), '--segments', '8', '--segment-mib', '12',
    '--store', path.join(work, 'store'), '--state', path.join(work, 'state'), '--web', '127.0.0.1:0',
    '--no-table', '--chunk-kib', '16', '--reads-in-flight', '1', '--seed', '7'];
  const proc = spawn(DOCKD, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const d = { proc, url: null, origin: null, log: [], exited: null, stdout: '' };
  demo = d;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('dockd demo printed no "web page:" line within 30 s')), 30_000);
    proc.stdout.on('data', (b) => {
      const s = b.toString();
      d.log.push(s);
      d.stdout += s;
      const m = /^web page: (https?:\/\/[^\s]+)/m.exec(d.stdout);
      if (m && !d.url) {
        d.url = m[1];
        d.origin = new URL(d.url).origin;
        clearTimeout(timer);
        resolve(d);
      }
    });
    proc.stderr.on('data', (b) => d.log.push(b.toString()));
    proc.on('error', (e) => { clearTimeout(timer); reject(e); });
    proc.on('exit', (code, signal) => {
      d.exited = { code, signal };
      clearTimeout(timer);
      if (!d.url) reject(new Error(`dockd demo exited (code ${code}, signal ${signal}) before serving the page`));
    });
  });
}

async function stopDemo() {
  if (!demo || demo.exited) return demo && demo.exited;
  const gone = new Promise((r) => demo.proc.once('exit', (code, signal) => r({ code, signal })));
  demo.proc.kill('SIGTERM');
  const res = await Promise.race([gone, sleep(15_000).then(() => null)]);
  if (res) return res;
  demo.proc.kill('SIGKILL');
  await gone;
  return { code: null, signal: 'SIGKILL (did not stop within 15 s of SIGTERM)' };
}

function cpuSeconds(pid) {
  // /proc/PID/stat: utime and stime are fields 14 and 15, counted after the ")" ending field 2.
  const rest = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  let hz = 100;
  try { hz = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100; } catch { /* Linux default */ }
  return (Number(rest[11]) + Number(rest[12])) / hz;
}

async function apiStatus() {
  const res = await fetch(demo.origin + '/api/v1/status');
  return res.json();
}

// --- the browser ---------------------------------------------------------------------------
// Playwright starts Chromium with a fresh, empty --user-data-dir of its own for each launch (it
// refuses one in the flags) and removes it on close.
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function newContext(opts = {}) {
  const ctx = await browser.newContext({ locale: 'en-GB', viewport: { width: 1280, height: 800 }, ...opts });
  ctx.setDefaultTimeout(20_000);
  ctx.on('request', (req) => requests.push(req.url()));
  ctx.on('page', (page) => {
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      const where = msg.location() && msg.location().url ? msg.location().url : '';
      if (expectedLoginErrors > 0 && / 401 /.test(msg.text()) && where.endsWith('/api/v1/login')) {
        expectedLoginErrors--;
        return;
      }
      consoleErrors.push(`console: ${msg.text()} ${where}`);
    });
    page.on('pageerror', (err) => consoleErrors.push(`page error: ${err.message}`));
  });
  return ctx;
}

async function doneSum(page) {
  return page.$$eval('#slots .tile .progress', (ps) => ps.reduce((a, p) => a + Number(p.dataset.done || 0), 0));
}

function auditEntries() {
  const file = path.join(work, 'state', 'audit', 'audit.log');
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

async function main() {
  assert(fs.existsSync(DOCKD), `no dockd at ${DOCKD} (set DOCKD)`);
  assert(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: tools/install-deps installs Debian's chromium`);
  fs.mkdirSync(ARTEFACTS, { recursive: true });

  // The browser first: once the demo starts, the transfer is under way.
  // Signals are handled below, so the demo is stopped too, and the summary printed.
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS,
    handleSIGINT: false, handleSIGTERM: false, handleSIGHUP: false });
  log(`chromium ${browser.version()}, dockd ${DOCKD}`);
  await startDemo();
  log(`dock page at ${demo.url}`);
  const ORIGIN = demo.origin;

  const desk = await newContext();
  const page = await desk.newPage();
  // Bytes on the wire, from the browser's own network events.
  const net = new Map();
  const cdp = await desk.newCDPSession(page);
  await cdp.send('Network.enable');
  cdp.on('Network.requestWillBeSent', (e) => net.set(e.requestId, { url: e.request.url, bytes: 0, done: false }));
  cdp.on('Network.loadingFinished', (e) => { const r = net.get(e.requestId); if (r) { r.bytes = e.encodedDataLength; r.done = true; } });
  let mainNavigations = 0;
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) mainNavigations++; });

  await page.goto(demo.url, { waitUntil: 'load' });

  await check('tiles appear for every camera', async () => {
    await page.waitForFunction((n) => {
      const tiles = document.querySelectorAll('#slots .tile');
      return tiles.length >= n && [...tiles].every((t) => /^BC-\d{4}$/.test(t.querySelector('.serial').textContent) &&
        t.querySelector('.officer').textContent.trim() !== '');
    }, CAMERAS);
    const tiles = await page.$$eval('#slots .tile', (ts) => ts.map((t) => ({
      slot: t.dataset.slot, serial: t.querySelector('.serial').textContent, officer: t.querySelector('.officer').textContent,
      state: t.querySelector('.state').textContent })));
    assert(tiles.length === CAMERAS, `${tiles.length} tiles, expected ${CAMERAS}`);
    const serials = tiles.map((t) => t.serial).sort();
    const want = Array.from({ length: CAMERAS }, (_, i) => `BC-${String(i + 1).padStart(4, '0')}`);
    assert(JSON.stringify(serials) === JSON.stringify(want), `serials ${serials.join(',')}, expected ${want.join(',')}`);
    for (const t of tiles) assert(t.state.trim() !== '', `tile ${t.slot} has no state text`);
    return tiles.map((t) => `${t.slot}:${t.serial}/${t.officer}`).join(' ');
  });

  await check('progress advances without a reload', async () => {
    await page.waitForSelector('#live.on');
    await page.evaluate(() => {
      window.__bodydockMarker = 'first-load';
      window.__bodydockTile = document.querySelector('#slots .tile');
    });
    await page.waitForFunction(() => [...document.querySelectorAll('#slots .tile')].some((t) => t.dataset.state === 'syncing'),
      null, { timeout: 30_000 });
    const a = await doneSum(page);
    const t0 = Date.now();
    let b = a;
    while (b <= a && Date.now() - t0 < 6_000) {
      await sleep(1_500);
      b = await doneSum(page);
    }
    assert(b > a, `bytes done stayed at ${a} for ${Date.now() - t0} ms while syncing`);
    const same = await page.evaluate(() => window.__bodydockMarker === 'first-load' &&
      window.__bodydockTile === document.querySelector('#slots .tile') && window.__bodydockTile.isConnected);
    assert(same, 'the page was reloaded or its tiles rebuilt');
    assert(mainNavigations === 1, `${mainNavigations} navigations of the page`);
    const pct = await page.$$eval('#slots .tile .progress', (ps) => ps.map((p) => p.getAttribute('aria-valuenow')).join('/'));
    return `${a} -> ${b} bytes in ${((Date.now() - t0) / 1000).toFixed(1)} s, percent ${pct}`;
  });

  // The page's weight on first load: every response finished by now; the live stream never
  // finishes and is reported apart.
  {
    const finished = [...net.values()].filter((r) => r.done && !r.url.startsWith('data:'));
    const total = finished.reduce((a, r) => a + r.bytes, 0);
    figures.push(`page weight: ${total} bytes (${finished.length} requests)`);
    figures.push('  ' + finished.map((r) => `${new URL(r.url).pathname} ${r.bytes}`).join(', ') + ' (bytes with headers)');
  }

  await check('the Dutch/English switch works', async () => {
    const state = async () => page.evaluate(() => ({
      lang: document.documentElement.lang,
      h2: document.querySelector('#uplink-panel h2').textContent,
      nl: document.querySelector('#lang-nl').getAttribute('aria-pressed'),
      en: document.querySelector('#lang-en').getAttribute('aria-pressed'),
      tile: document.querySelector('#slots .tile .state').textContent,
    }));
    const nlStates = ['leeg', 'laadt op, mag mee', 'identificeren', 'synchroniseren', 'wacht op verbinding', 'klaar, mag mee', 'aandacht nodig'];
    const enStates = ['empty', 'charging, safe to take', 'identifying', 'syncing', 'waiting for uplink', 'done, safe to take', 'attention'];
    let s = await state();
    assert(s.lang === 'en' && s.h2 === 'Uplink to storage', `an en-GB browser starts in '${s.lang}' ("${s.h2}")`);
    await page.click('#lang-nl');
    s = await state();
    assert(s.lang === 'nl', `html lang is '${s.lang}' after NL`);
    assert(s.h2 === 'Verbinding met opslag', `heading "${s.h2}" after NL`);
    assert(s.nl === 'true' && s.en === 'false', `aria-pressed nl=${s.nl} en=${s.en} after NL`);
    assert(nlStates.includes(s.tile), `tile state "${s.tile}" is not Dutch`);
    // The choice is kept: another page of the same browser profile opens in Dutch.
    const again = await desk.newPage();
    await again.goto(demo.url);
    await again.waitForSelector('#slots .tile');
    const keptLang = await again.evaluate(() => document.documentElement.lang);
    await again.close();
    assert(keptLang === 'nl', `a new page after choosing NL opens in '${keptLang}'`);
    await page.click('#lang-en');
    s = await state();
    assert(s.lang === 'en' && s.h2 === 'Uplink to storage', `after EN: lang '${s.lang}', heading "${s.h2}"`);
    assert(s.nl === 'false' && s.en === 'true', `aria-pressed nl=${s.nl} en=${s.en} after EN`);
    assert(enStates.includes(s.tile), `tile state "${s.tile}" is not English`);
    // A browser that prefers Dutch starts in Dutch.
    const dutch = await newContext({ locale: 'nl-NL' });
    const p = await dutch.newPage();
    await p.goto(demo.url);
    await p.waitForSelector('#slots .tile .state:not(:empty)');
    const d = await p.evaluate(() => ({ lang: document.documentElement.lang, h2: document.querySelector('#uplink-panel h2').textContent,
      login: document.querySelector('#login-open').textContent, tile: document.querySelector('#slots .tile .state').textContent }));
    await dutch.close();
    assert(d.lang === 'nl' && d.h2 === 'Verbinding met opslag' && d.login === 'Inloggen', `an nl-NL browser starts with ${JSON.stringify(d)}`);
    assert(nlStates.includes(d.tile), `an nl-NL browser shows tile state "${d.tile}"`);
    return 'NL, EN, kept across pages, nl-NL default';
  });

  await check('login, admin pause and resume, audited', async () => {
    const password = fs.readFileSync(path.join(work, 'state', 'web-admin-password'), 'utf8').trim();
    assert(password.length > 0, 'empty web-admin-password');
    assert(await page.isHidden('#action-pause'), 'admin buttons visible before login');
    await page.click('#login-open');
    await page.waitForSelector('#login-form', { state: 'visible' });
    await page.fill('#login-user', 'admin');
    await page.fill('#login-password', password + 'x');
    expectedLoginErrors++;
    await page.click('#login-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#login-error').textContent.trim() !== '');
    const err = await page.textContent('#login-error');
    assert(/wrong user name or password/.test(err), `wrong password shows "${err}"`);
    assert(await page.isHidden('#action-pause'), 'admin buttons visible after a refused login');
    await page.fill('#login-password', password);
    await page.click('#login-form button[type=submit]');
    await page.waitForFunction(() => /admin/.test(document.querySelector('#whoami').textContent));
    assert(await page.isHidden('#login-form'), 'login form still shown after login');
    assert(await page.isVisible('#action-pause'), 'pause button hidden for admin');
    const tileButtons = await page.$$eval('#slots .tile .power-cycle', (bs) => bs.filter((b) => b.offsetParent !== null).length);
    assert(tileButtons === CAMERAS, `${tileButtons} visible power-cycle buttons, expected ${CAMERAS}`);

    const reason = `browser test pause ${process.pid}`;
    await page.click('#action-pause');
    await page.waitForSelector('#reason-dialog[open]');
    await page.fill('#reason-text', reason);
    await page.click('#reason-ok');
    await page.waitForFunction(() => !document.querySelector('#toast').hidden && /uploads paused/.test(document.querySelector('#toast').textContent));
    await page.waitForFunction(() => /\(paused\)/.test(document.querySelector('#uplink-state').textContent));
    assert(await page.isHidden('#reason-dialog'), 'reason dialog still open');
    const st = await apiStatus();
    assert(st.uplink.paused === true, 'API says uplink not paused');
    // The same in Dutch.
    await page.click('#lang-nl');
    const nlUplink = await page.textContent('#uplink-state');
    await page.click('#lang-en');
    assert(/\(gepauzeerd\)/.test(nlUplink), `Dutch uplink state "${nlUplink}"`);

    await page.click('#action-resume');
    await page.waitForFunction(() => /uploads resumed/.test(document.querySelector('#toast').textContent));
    await page.waitForFunction(() => !/\(paused\)/.test(document.querySelector('#uplink-state').textContent));

    let entries = [];
    const t0 = Date.now();
    const find = () => {
      entries = auditEntries();
      return {
        pause: entries.find((e) => e.event === 'admin action' && e.actor === 'admin admin' && e.details && e.details.action === 'pause'),
        resume: entries.find((e) => e.event === 'admin action' && e.actor === 'admin admin' && e.details && e.details.action === 'resume'),
        login: entries.find((e) => e.event === 'web login' && e.actor === 'admin admin' && e.why === 'logged in'),
        refused: entries.find((e) => e.event === 'web login' && e.details && e.details.user === 'admin' && /refused/.test(e.why || '')),
      };
    };
    let a = find();
    while ((!a.pause || !a.resume || !a.login || !a.refused) && Date.now() - t0 < 5_000) { await sleep(250); a = find(); }
    assert(a.refused, 'no audit entry for the refused login');
    assert(a.login, 'no audit entry for the login');
    assert(a.pause, 'no audit entry for the pause by "admin admin"');
    assert((a.pause.why || '').includes(reason), `the pause's audit entry lacks the reason: ${JSON.stringify(a.pause)}`);
    assert(a.resume, 'no audit entry for the resume');
    assert(a.resume.seq > a.pause.seq, 'resume audited before pause');
    return `audit seq ${a.refused.seq} refused login, ${a.login.seq} login, ${a.pause.seq} pause ("${a.pause.why}"), ${a.resume.seq} resume`;
  });

  await check('a slot reaches done', async () => {
    const t0 = Date.now();
    await page.waitForFunction((safe) => [...document.querySelectorAll('#slots .tile')].some((t) => safe.includes(t.dataset.state)),
      SAFE, { timeout: DONE_WITHIN_MS });
    const t = await page.$eval('#slots .tile:is([data-state=done],[data-state=charging])', (e) => ({ slot: e.dataset.slot,
      state: e.dataset.state, colour: e.dataset.colour, text: e.querySelector('.state').textContent,
      pct: e.querySelector('.progress').getAttribute('aria-valuenow') }));
    assert(/safe to take/.test(t.text), `state text "${t.text}" for ${t.state}`);
    assert(t.pct === '100', `a ${t.state} tile shows ${t.pct}%`);
    assert(t.colour === 'green', `a ${t.state} tile is ${t.colour}`);
    return `slot ${t.slot} ${t.state} ("${t.text}", ${t.colour}) ${((Date.now() - t0) / 1000).toFixed(1)} s after the pause and resume`;
  });

  await check('every slot becomes safe to take', async () => {
    const t0 = Date.now();
    await page.waitForFunction((safe) => [...document.querySelectorAll('#slots .tile')].every((t) => safe.includes(t.dataset.state)),
      SAFE, { timeout: DONE_WITHIN_MS });
    const tiles = await page.$$eval('#slots .tile', (ts) => ts.map((t) => ({ state: t.dataset.state, colour: t.dataset.colour,
      pct: t.querySelector('.progress').getAttribute('aria-valuenow') })));
    for (const t of tiles) assert(t.pct === '100' && t.colour === 'green', `a ${t.state} tile at ${t.pct}%, ${t.colour}`);
    return `${((Date.now() - t0) / 1000).toFixed(1)} s more: ${tiles.map((t) => t.state).join(',')}`;
  });

  await check('screenshots, desktop and phone; no sideways scroll on a phone', async () => {
    await page.waitForTimeout(300);
    const desktop = path.join(ARTEFACTS, 'dashboard-desktop.png');
    await page.screenshot({ path: desktop, fullPage: true });
    const phoneCtx = await newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    const phone = await phoneCtx.newPage();
    await phone.goto(demo.url);
    await phone.waitForSelector('#live.on');
    await phone.waitForFunction((n) => document.querySelectorAll('#slots .tile .serial:not(:empty)').length >= n, CAMERAS);
    const phonePng = path.join(ARTEFACTS, 'dashboard-phone.png');
    await phone.screenshot({ path: phonePng, fullPage: true });
    const m = await phone.evaluate(() => ({ sw: document.documentElement.scrollWidth, iw: window.innerWidth,
      wide: [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
        .slice(0, 3).map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ')[0] : '')) }));
    await phoneCtx.close();
    for (const f of [desktop, phonePng]) assert(fs.statSync(f).size > 10_000, `${f} is nearly empty`);
    assert(m.sw <= m.iw + 1, `phone page is ${m.sw} px wide in a ${m.iw} px window (${m.wide.join(', ')})`);
    return `${desktop}, ${phonePng}`;
  });

  await check('server cpu with 5 live pages', async () => {
    await desk.close();
    await sleep(1_000);
    const pid = demo.proc.pid;
    let c0 = cpuSeconds(pid), t0 = process.hrtime.bigint();
    await sleep(5_000);
    const idle = (cpuSeconds(pid) - c0) / (Number(process.hrtime.bigint() - t0) / 1e9);
    const ctx = await newContext();
    const pages = [];
    for (let i = 0; i < 5; i++) {
      const p = await ctx.newPage();
      await p.goto(demo.url);
      pages.push(p);
    }
    for (const p of pages) await p.waitForSelector('#live.on');
    const counts = await Promise.all(pages.map((p) => p.evaluate(() => {
      window.__renders = 0;
      new MutationObserver(() => { window.__renders++; }).observe(document.querySelector('#queue-items'), { childList: true, characterData: true, subtree: true });
      return true;
    })));
    assert(counts.length === 5, 'pages not ready');
    // What the live stream costs one page: its status messages during the window.
    let sseBytes = 0, sseMessages = 0;
    const cdp5 = await ctx.newCDPSession(pages[0]);
    await cdp5.send('Network.enable');
    cdp5.on('Network.eventSourceMessageReceived', (e) => {
      sseMessages++;
      sseBytes += Buffer.byteLength(e.data) + 'event: status\ndata: \n\n'.length;
    });
    c0 = cpuSeconds(pid);
    t0 = process.hrtime.bigint();
    await sleep(10_000);
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const busy = (cpuSeconds(pid) - c0) / secs;
    const renders = await Promise.all(pages.map((p) => p.evaluate(() => window.__renders)));
    const live = await Promise.all(pages.map((p) => p.evaluate(() => document.querySelector('#live').classList.contains('on'))));
    await ctx.close();
    figures.push(`live stream: ${sseMessages} status messages in ${secs.toFixed(1)} s to one page, ` +
      `${Math.round(sseBytes / Math.max(1, sseMessages))} bytes each (${Math.round(sseBytes / secs)} bytes/s per page)`);
    figures.push(`server cpu with 5 live pages: ${(100 * busy).toFixed(1)}% of one core (no page: ${(100 * idle).toFixed(1)}%; ` +
      `${secs.toFixed(1)} s, every slot safe to take; dockd from ${path.relative(process.cwd(), DOCKD) || DOCKD})`);
    assert(live.every(Boolean), 'a page lost its live stream');
    assert(renders.every((n) => n >= 5), `pages re-rendered ${renders.join('/')} times in ${secs.toFixed(0)} s`);
    return `${(100 * busy).toFixed(1)}% of one core, ${renders.join('/')} updates per page`;
  });

  await check('no request off the dock and no console errors', async () => {
    const off = requests.filter((u) => !(u.startsWith(ORIGIN + '/') || u.startsWith('data:') || u === 'about:blank'));
    assert(off.length === 0, `requests to other hosts: ${[...new Set(off)].slice(0, 5).join(' ')}`);
    assert(consoleErrors.length === 0, `${consoleErrors.length} errors: ${consoleErrors.slice(0, 3).join(' | ')}`);
    return `${requests.length} requests, all to ${ORIGIN}`;
  });
}

async function teardown() {
  if (browser) { await browser.close().catch(() => {}); browser = null; }
  const res = await stopDemo().catch((e) => ({ code: null, signal: String(e) }));
  if (demo) {
    const text = demo.log.join('');
    try { fs.writeFileSync(path.join(ARTEFACTS, 'dockd-demo.log'), text); } catch { /* artefact folder gone */ }
    if (demo.url) {
      await check('dockd demo stops cleanly on SIGTERM', async () => {
        assert(res && res.code === 0, `dockd exited with ${res ? `code ${res.code}, signal ${res.signal}` : 'nothing'}`);
        const bad = /(ERROR: (Address|Leak)Sanitizer|runtime error:)/.exec(text);
        assert(!bad, `the demo's log has "${bad && bad[0]}" (see ${path.join(ARTEFACTS, 'dockd-demo.log')})`);
      }, true);
    }
  }
  fs.rmSync(work, { recursive: true, force: true });
}

async function finish(code) {
  if (finishing) return;
  finishing = true;
  await teardown();
  for (const f of figures) log(f);
  log(`screenshots and the demo's log in ${ARTEFACTS}`);
  log(`${passed} passed, ${failed} failed`);
  process.exit(code || failed ? 1 : 0);
}

const watchdog = setTimeout(() => {
  failed++;
  interrupted = true;
  log(`FAIL the whole test took longer than ${WATCHDOG_MS / 1000} s`);
  finish(1);
}, WATCHDOG_MS);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { failed++; interrupted = true; log(`FAIL interrupted by ${sig}`); finish(1); });
}

try {
  await main();
} catch (e) {
  if (!interrupted) failed++;
  log(`FAIL setup: ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`);
}
clearTimeout(watchdog);
await finish(0);
