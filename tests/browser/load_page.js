// load_page.js - loads `memtrace report` pages in headless Chromium over the
// DevTools protocol and says what a person would have seen.
//
//   node load_page.js OUTDIR PAGE.html...
//
// Chromium (CHROMIUM, default /usr/bin/chromium) is started once, with a
// fresh profile; each page is opened from file:// in a tab of its own.  For
// PAGE NAME.html, OUTDIR/NAME.png is a screenshot of the page (its top
// SHOT_MAX_HEIGHT pixels) and
// OUTDIR/NAME.facts holds, one key=value per line:
//   error=TEXT        one per JavaScript exception, console error or
//                     browser log error (there should be none)
//   request=URL       one per network request that is not the page itself
//   load_ms=N         from navigation until the page's script has finished
//                     drawing (body[data-ready]), in milliseconds
//   KEY=VALUE         the DOM facts of PROBE below (node counts, texts)
// Exit status: 0 when every page loaded (whatever it showed), 1 otherwise.
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const WebSocket = require('ws');

const [outdir, ...pages] = process.argv.slice(2);
if (!outdir || !pages.length) {
  console.error('usage: node load_page.js OUTDIR PAGE.html...');
  process.exit(2);
}
const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'memtrace-chromium.'));
const TIMEOUT_MS = 20000 + 10000 * pages.length;
const SHOT_MAX_HEIGHT = 3200; // pixels of each page in its screenshot

// What the tests look at, computed in the page after it is drawn.  The
// flame graph is also switched to every weight, searched and zoomed, as a
// person would, counting its boxes each time.
const PROBE = `(() => {
  const q = (s) => document.querySelectorAll(s);
  const text = (s) => { const e = document.querySelector(s); return e ? e.textContent : ''; };
  const r = {};
  r.scripts = q('script').length;
  r.imgs = q('img').length;
  r.bolds = q('b').length;
  r.command = text('header dd');
  r.pwned = String(window.__memtrace_pwned === undefined ? 0 : window.__memtrace_pwned);
  r.layer_boxes = q('#layer-svg .layer-box').length;
  r.layer_boxes_with_calls = q('#layer-svg .layer-box rect.layer:not(.empty)').length;
  r.timeline_series = q('#timeline-svg polyline.series').length;
  const line = document.querySelector('#timeline-svg polyline.series');
  r.timeline_points = line ? line.getAttribute('points').trim().split(/\\s+/).length : 0;
  r.timeline_markers = q('#timeline-svg .marker').length;
  r.flame_nodes = q('#flame-svg rect.node').length;
  r.flame_data_nodes = (document.querySelector('#flame-svg') || {getAttribute: () => ''}).getAttribute('data-nodes');
  const metric = document.querySelector('#flame-metric');
  if (metric) {
    for (const m of ['calls', 'peak_bytes', 'leaked_bytes', 'bytes']) {
      metric.value = m;
      metric.dispatchEvent(new Event('change'));
      r['flame_nodes_' + m] = q('#flame-svg rect.node').length;
    }
    const search = document.querySelector('#flame-search');
    search.value = 'main';
    search.dispatchEvent(new Event('input'));
    r.flame_match_main = q('#flame-svg .fn.match').length;
    search.value = '';
    search.dispatchEvent(new Event('input'));
    const deepest = [...q('#flame-svg .fn')].pop();
    if (deepest) {
      deepest.dispatchEvent(new MouseEvent('click', {bubbles: true}));
      r.flame_nodes_zoomed = q('#flame-svg rect.node').length;
      document.querySelector('#flame-reset').click();
    }
  }
  // sorting: the sites by calls, most first, then least first
  const callsHead = [...q('#top-table th')].find((th) => th.getAttribute('title') === 'calls');
  if (callsHead) {
    const col = [...q('#top-table th')].indexOf(callsHead);
    const first = () => document.querySelector('#top-table tbody tr').children[col].textContent;
    callsHead.click();
    r.top_calls_first_desc = first();
    callsHead.click();
    r.top_calls_first_asc = first();
  }
  // hovering the right end of the memory chart shows the last point
  const overlay = document.querySelector('#timeline-svg .overlay');
  if (overlay) {
    const b = overlay.getBoundingClientRect();
    overlay.dispatchEvent(new MouseEvent('mousemove', {clientX: b.right - 1, clientY: b.top + 5, bubbles: true}));
    r.hover = text('#tip');
    overlay.dispatchEvent(new MouseEvent('mouseleave'));
  }
  // the layout sliders (bundled: layout, pymalloc: pylayout): the first
  // moment, then the last, and the map drawn at the last
  for (const m of ['layout', 'pylayout']) {
    const slider = document.querySelector('#' + m + '-slider');
    if (slider) {
      r[m + '_moments'] = Number(slider.max) + 1;
      slider.value = 0;
      slider.dispatchEvent(new Event('input'));
      r[m + '_first'] = text('#' + m + '-time');
      slider.value = slider.max;
      slider.dispatchEvent(new Event('input'));
      r[m + '_last'] = text('#' + m + '-time');
    }
    r[m + '_arenas'] = q('#' + m + '-grid .arena').length;
    r[m + '_pools'] = q('#' + m + '-grid .pool').length;
  }
  for (const t of ['leaks', 'temporary', 'top', 'growth', 'gc', 'processes'])
    r[t + '_rows'] = q('#' + t + '-table tbody tr').length;
  r.nodata = q('.nodata').length;
  r.verdict = text('#verdict');
  r.complete = text('#complete');
  r.pymalloc = text('#pymalloc-note');
  r.gc_text = text('#gc');
  r.first_leak_frame = text('#leaks-table tbody tr td.stack .frame');
  r.flame_names = [...q('#flame-svg .fn title')].map((t) => t.textContent.split('\\n')[0]).join('|');
  r.body_text_len = document.body.innerText.length;
  return JSON.stringify(r);
})()`;

let browser = null; // the Chromium process, once started

function fail(msg) {
  if (browser) try { process.kill(-browser.pid, 'SIGKILL'); } catch (e) { /* gone */ }
  console.error('load_page: ' + msg);
  process.exit(1);
}

function start() {
  return new Promise((resolve, reject) => {
    const proc = spawn(chromium, [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--no-default-browser-check',
      '--disable-extensions', '--disable-background-networking', '--disable-component-update',
      '--remote-debugging-port=0', '--user-data-dir=' + profile, 'about:blank',
    ], { stdio: ['ignore', 'ignore', 'pipe'], detached: true }); // its own process group: stop() ends all of it
    let err = '';
    proc.stderr.on('data', (d) => {
      err += d;
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
      if (m) resolve({ proc, url: m[1] });
    });
    proc.on('exit', (code) => reject(new Error('chromium exited with ' + code + ': ' + err.slice(-500))));
  });
}

async function main() {
  const timer = setTimeout(() => fail('timed out after ' + TIMEOUT_MS + ' ms'), TIMEOUT_MS);
  const { proc, url } = await start();
  browser = proc;
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
  let id = 0;
  const pending = new Map();
  const waiters = [];
  const tabs = new Map(); // sessionId -> {url, errors, requests}
  ws.on('message', (data) => {
    const msg = JSON.parse(data);
    if (msg.id && pending.has(msg.id)) {
      const { res, rej } = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error) rej(new Error(JSON.stringify(msg.error)));
      else res(msg.result);
      return;
    }
    const p = msg.params || {};
    const tab = tabs.get(msg.sessionId);
    if (tab && msg.method === 'Runtime.exceptionThrown') {
      const d = p.exceptionDetails || {};
      tab.errors.push((d.exception && d.exception.description) || d.text || 'exception');
    } else if (tab && msg.method === 'Runtime.consoleAPICalled' && (p.type === 'error' || p.type === 'assert')) {
      tab.errors.push('console.' + p.type + ': ' + p.args.map((a) => a.value || a.description).join(' '));
    } else if (tab && msg.method === 'Log.entryAdded' && p.entry.level === 'error') {
      tab.errors.push('log: ' + p.entry.text);
    } else if (tab && msg.method === 'Network.requestWillBeSent' && p.request.url !== tab.url) {
      tab.requests.push(p.request.url);
    }
    for (let i = waiters.length - 1; i >= 0; i--)
      if (waiters[i].method === msg.method && waiters[i].sessionId === msg.sessionId) waiters.splice(i, 1)[0].res(p);
  });
  const send = (method, params = {}, sessionId) => new Promise((res, rej) => {
    const m = { id: ++id, method, params };
    if (sessionId) m.sessionId = sessionId;
    pending.set(m.id, { res, rej });
    ws.send(JSON.stringify(m));
  });

  for (const page of pages) {
    const name = path.basename(page).replace(/\.html$/, '');
    const tab = { url: 'file://' + path.resolve(page), errors: [], requests: [] };
    const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
    tabs.set(sessionId, tab);
    const s = (method, params) => send(method, params, sessionId);
    const once = (method) => new Promise((res) => waiters.push({ method, sessionId, res }));
    await s('Runtime.enable');
    await s('Log.enable');
    await s('Page.enable');
    await s('Network.enable');
    await s('Emulation.setDeviceMetricsOverride', { width: 1000, height: 1400, deviceScaleFactor: 1, mobile: false });

    const t0 = Date.now();
    const loaded = once('Page.loadEventFired');
    const nav = await s('Page.navigate', { url: tab.url });
    if (nav.errorText) fail('cannot open ' + tab.url + ': ' + nav.errorText);
    await loaded;
    let ready = '';
    while (ready !== '1' && Date.now() - t0 < 10000) {
      const r = await s('Runtime.evaluate', { expression: 'document.body && document.body.getAttribute("data-ready")', returnByValue: true });
      ready = r.result.value;
      if (ready !== '1') await new Promise((res) => setTimeout(res, 10));
    }
    const loadMs = Date.now() - t0;
    // the top of the page (header, layers, chart, flame graph, first tables):
    // a whole page of long tables takes seconds to paint
    const tall = await s('Runtime.evaluate', { expression: 'document.documentElement.scrollHeight', returnByValue: true });
    const height = Math.min(tall.result.value || 1400, SHOT_MAX_HEIGHT);
    const shotData = await s('Page.captureScreenshot', {
      format: 'png', captureBeyondViewport: true, clip: { x: 0, y: 0, width: 1000, height, scale: 1 },
    });
    fs.writeFileSync(path.join(outdir, name + '.png'), Buffer.from(shotData.data, 'base64'));
    const probe = await s('Runtime.evaluate', { expression: PROBE, returnByValue: true });
    if (probe.exceptionDetails) tab.errors.push('probe: ' + JSON.stringify(probe.exceptionDetails));
    // events of the probe's clicks arrive before this returns
    await s('Runtime.evaluate', { expression: '1', returnByValue: true });

    const out = [];
    tab.errors.forEach((e) => out.push('error=' + e.replace(/\n/g, ' ')));
    tab.requests.forEach((u) => out.push('request=' + u));
    out.push('ready=' + (ready === '1' ? 1 : 0));
    out.push('load_ms=' + loadMs);
    const facts = probe.result && probe.result.value ? JSON.parse(probe.result.value) : {};
    for (const k of Object.keys(facts)) out.push(k + '=' + String(facts[k]).replace(/\n/g, ' '));
    fs.writeFileSync(path.join(outdir, name + '.facts'), out.join('\n') + '\n');
    await send('Target.closeTarget', { targetId });
  }

  clearTimeout(timer);
  ws.close();
  await stop(proc);
  removeProfile();
}

// Ends Chromium and its helper processes (SIGTERM to its process group)
// and waits for the browser, at most 3 s.
function stop(proc) {
  const group = (sig) => { try { process.kill(-proc.pid, sig); } catch (e) { /* gone */ } };
  return new Promise((res) => {
    if (proc.exitCode !== null || proc.signalCode !== null) { group('SIGTERM'); return res(); }
    const t = setTimeout(() => { group('SIGKILL'); res(); }, 3000);
    proc.on('exit', () => { clearTimeout(t); res(); });
    group('SIGTERM');
  });
}

// Removes the profile; a helper still writing into it only leaves it
// behind in the temporary directory (the test's, which goes at its end).
function removeProfile() {
  try { fs.rmSync(profile, { recursive: true, force: true, maxRetries: 5 }); } catch (e) { /* left */ }
}

main().catch((e) => {
  removeProfile();
  fail(e.message);
});
