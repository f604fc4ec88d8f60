/* report.js - draws the page of `memtrace report --html` from the tables
 * embedded in it (element #mt-data: {"file", "top", "limits", "tables":
 * {name: {cols, total, rows}}}, written by analyzer/report_html.c).
 *
 * Embedded into the memtrace binary at build time and inlined in every
 * page: no library, no network.  Every string that came from the traced
 * program is put in the page as text (textContent, createTextNode,
 * setAttribute), never parsed as HTML.
 */
(function () {
  'use strict';
  var SVGNS = 'http://www.w3.org/2000/svg';
  var D = JSON.parse(document.getElementById('mt-data').textContent);
  var T = D.tables;
  var app = document.getElementById('app');

  /* ---- helpers ---- */
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    setAll(e, attrs, kids);
    return e;
  }
  function sv(tag, attrs, kids) {
    var e = document.createElementNS(SVGNS, tag);
    setAll(e, attrs, kids);
    return e;
  }
  function setAll(e, attrs, kids) {
    if (attrs) for (var k in attrs) if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    if (kids === undefined || kids === null) return;
    if (!Array.isArray(kids)) kids = [kids];
    kids.forEach(function (c) {
      if (c === null || c === undefined) return;
      e.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
    });
  }
  function fmtBytes(v) {
    if (v === null || v === undefined) return '-';
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0, a = Math.abs(v);
    while (a >= 1024 && i < u.length - 1) { a /= 1024; i++; }
    return (v < 0 ? '-' : '') + (i ? a.toFixed(1) : a.toFixed(0)) + ' ' + u[i];
  }
  function fmtCount(v) {
    if (v === null || v === undefined) return '-';
    return String(v).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }
  function fmtMs(ms) {
    if (ms === null || ms === undefined) return '-';
    if (ms >= 1000) return (ms / 1000).toFixed(3) + ' s';
    if (ms >= 1) return ms.toFixed(1) + ' ms';
    return (ms * 1000).toFixed(0) + ' us';
  }
  function col(t, csvName) {
    for (var i = 0; i < t.cols.length; i++) if (t.cols[i].csv === csvName) return i;
    return -1;
  }
  function kvTable(t) {
    var m = {};
    t.rows.forEach(function (r) { m[r[0]] = r[1]; });
    return m;
  }
  function section(id, title, note) {
    var s = el('section', {id: id}, [el('h2', null, title)]);
    if (note) s.appendChild(el('p', {'class': 'note'}, note));
    app.appendChild(s);
    return s;
  }
  function noData(s, text) {
    s.appendChild(el('p', {'class': 'nodata'}, text));
  }
  var tip = el('div', {id: 'tip', 'class': 'tip'});
  document.body.appendChild(tip);
  function showTip(ev, lines) {
    tip.textContent = '';
    lines.forEach(function (l) { tip.appendChild(el('div', null, l)); });
    tip.style.display = 'block';
    var x = ev.clientX + 14, y = ev.clientY + 14;
    if (x + tip.offsetWidth > window.innerWidth) x = ev.clientX - tip.offsetWidth - 8;
    tip.style.left = x + 'px';
    tip.style.top = y + 'px';
  }
  function hideTip() { tip.style.display = 'none'; }

  /* ---- header and verdict ---- */
  var S = kvTable(T.summary);
  function header() {
    var h = el('header', null, [el('h1', null, 'memtrace report')]);
    var dl = el('dl');
    function row(k, v) { dl.appendChild(el('dt', null, k)); dl.appendChild(el('dd', null, v)); }
    row('command', S.command || '(unknown)');
    row('trace', D.file);
    row('duration', fmtMs(Number(S.duration_ns) / 1e6));
    row('processes / threads', fmtCount(S.processes) + ' / ' + fmtCount(S.threads));
    row('events', fmtCount(S.events));
    var complete = S.complete === '1';
    var c = el('dd', {'class': complete ? 'ok' : 'bad', id: 'complete'},
               complete ? 'complete' : 'incomplete' + (S.incomplete_reason ? ': ' + S.incomplete_reason : ''));
    dl.appendChild(el('dt', null, 'recording'));
    dl.appendChild(c);
    h.appendChild(dl);
    var v = Number(S.heap_allocations) === 0 ? 'No heap allocation was recorded in this trace.' : 'Peak heap ' + fmtBytes(Number(S.heap_peak_bytes)) + ' in ' + fmtCount(S.heap_peak_blocks) + ' blocks' +
            (S.heap_peak_ts_ns ? ' at ' + fmtMs(Number(S.heap_peak_ts_ns) / 1e6) : '') +
            '; ' + (complete ? 'leaked ' : 'live at the end ') + fmtBytes(Number(S.leaked_bytes)) + ' in ' +
            fmtCount(S.leaked_blocks) + ' blocks; retained ' +
            (S.retained_bytes !== null && S.retained_bytes !== undefined
               ? fmtBytes(Number(S.retained_bytes)) + ' kept free by the bundled allocator'
               : 'not measured (no allocator layout in this trace)') + '.';
    h.appendChild(el('p', {id: 'verdict', 'class': 'verdict'}, v));
    app.appendChild(h);
  }

  /* ---- the layer diagram (obmalloc's picture, with this run's numbers) ---- */
  function layers() {
    var s = section('layers', 'Layers', 'Each layer of the allocator stack with the calls recorded there and the bytes its allocating calls requested.');
    var t = T.layers, byDomain = {};
    t.rows.forEach(function (r) { byDomain[r[1]] = {calls: r[3], failed: r[4], bytes: r[5], desc: r[2]}; });
    var bands = [
      {lvl: '+3', name: 'object-specific allocators (int, dict, list, ...)', doms: [], note: 'not recorded apart: their calls reach the object allocator'},
      {lvl: '+2', name: "object allocator", doms: ['pyobj', 'pyarena', 'bundled']},
      {lvl: '+1', name: 'raw memory allocator (PyMem)', doms: ['pymem_raw', 'pymem']},
      {lvl: '0', name: 'C library allocator', doms: ['libc']},
      {lvl: '-1', name: 'operating system (virtual memory)', doms: ['os']}
    ];
    var W = 900, BH = 62, svg = sv('svg', {id: 'layer-svg', width: W, height: bands.length * (BH + 8), 'class': 'layers'});
    bands.forEach(function (b, i) {
      var y = i * (BH + 8);
      svg.appendChild(sv('text', {x: 4, y: y + 20, 'class': 'lvl'}, b.lvl));
      svg.appendChild(sv('text', {x: 4, y: y + 38, 'class': 'lname'}, b.name));
      var x0 = 270, w = (W - x0) / Math.max(1, b.doms.length);
      if (!b.doms.length) {
        svg.appendChild(sv('rect', {x: x0, y: y, width: W - x0 - 4, height: BH, 'class': 'layer empty'}));
        svg.appendChild(sv('text', {x: x0 + 8, y: y + 36, 'class': 'lnum'}, b.note));
      }
      b.doms.forEach(function (d, j) {
        var v = byDomain[d] || {calls: 0, bytes: 0};
        var g = sv('g', {'class': 'layer-box', 'data-domain': d});
        g.appendChild(sv('rect', {x: x0 + j * w, y: y, width: w - 4, height: BH, 'class': v.calls ? 'layer' : 'layer empty'}));
        g.appendChild(sv('text', {x: x0 + j * w + 8, y: y + 20, 'class': 'dname'}, d));
        g.appendChild(sv('text', {x: x0 + j * w + 8, y: y + 38, 'class': 'lnum'},
                         v.calls ? fmtCount(v.calls) + (d === 'bundled' ? ' events' : ' calls') : 'no data'));
        if (v.calls) g.appendChild(sv('text', {x: x0 + j * w + 8, y: y + 54, 'class': 'lnum'}, fmtBytes(v.bytes) + ' requested'));
        g.appendChild(sv('title', null, d + ': ' + (v.desc || '') + '; ' + fmtCount(v.calls) + ' calls, ' +
                                             fmtCount(v.failed || 0) + ' failed, ' + fmtCount(v.bytes) + ' bytes requested'));
        svg.appendChild(g);
      });
    });
    s.appendChild(svg);
  }

  /* ---- memory over time ---- */
  function timeline() {
    var s = section('timeline', 'Memory over time', 'Live bytes per layer and the resident size (RSS) on one axis; lines mark interpreter and process events, ticks the garbage collector runs. Hover for values.');
    var t = T.timeline;
    if (!t.rows.length) { noData(s, 'No data: the trace has no heap allocations, mappings, arenas or RSS samples.'); return; }
    var series = [
      {csv: 'heap_bytes', name: 'heap (libc)', cls: 's-heap'},
      {csv: 'mapped_bytes', name: 'mapped (os)', cls: 's-mapped'},
      {csv: 'arena_bytes', name: 'arenas (bundled)', cls: 's-arena'},
      {csv: 'rss_bytes', name: 'RSS', cls: 's-rss'}
    ];
    var ti = col(t, 'time_ms');
    series.forEach(function (x) { x.i = col(t, x.csv); x.has = t.rows.some(function (r) { return r[x.i] !== null; }); });
    series = series.filter(function (x) { return x.has; });
    var maxY = 1, maxX = 0;
    t.rows.forEach(function (r) {
      series.forEach(function (x) { if (r[x.i] > maxY) maxY = r[x.i]; });
      if (r[ti] > maxX) maxX = r[ti];
    });
    if (maxX <= 0) maxX = 1;
    var W = 900, H = 300, L = 70, R = 10, TP = 10, B = 30;
    function X(v) { return L + (W - L - R) * v / maxX; }
    function Y(v) { return TP + (H - TP - B) * (1 - v / maxY); }
    var svg = sv('svg', {id: 'timeline-svg', width: W, height: H, 'class': 'chart'});
    for (var k = 0; k <= 4; k++) {
      var yv = maxY * k / 4;
      svg.appendChild(sv('line', {x1: L, x2: W - R, y1: Y(yv), y2: Y(yv), 'class': 'grid'}));
      svg.appendChild(sv('text', {x: L - 6, y: Y(yv) + 4, 'class': 'axis', 'text-anchor': 'end'}, fmtBytes(yv)));
      svg.appendChild(sv('text', {x: X(maxX * k / 4), y: H - 10, 'class': 'axis', 'text-anchor': k === 4 ? 'end' : k ? 'middle' : 'start'},
                         fmtMs(maxX * k / 4)));
    }
    series.forEach(function (x) {
      var pts = [];
      t.rows.forEach(function (r) { if (r[x.i] !== null) pts.push(X(r[ti]).toFixed(1) + ',' + Y(r[x.i]).toFixed(1)); });
      svg.appendChild(sv('polyline', {points: pts.join(' '), 'class': 'series ' + x.cls, 'data-series': x.csv}));
    });
    /* markers: process events and gc runs */
    var m = T.markers, mt = col(m, 'time_ms'), mk = col(m, 'kind'), mp = col(m, 'pid');
    var shownKinds = {main_enter: 1, exec: 1, fork_child: 1, killed: 1, py_init: 1, py_user_code: 1, py_atexit: 1};
    var ngc = 0;
    m.rows.forEach(function (r) {
      var x = X(r[mt]);
      if (r[mk] === 'gc') {
        var t = sv('g', {'class': 'marker m-gc'});
        t.appendChild(sv('line', {x1: x, x2: x, y1: H - B, y2: H - B - 10}));
        t.appendChild(sv('title', null, 'gc generation ' + r[col(m, 'value')] + ' (pid ' + r[mp] + ') at ' + fmtMs(r[mt])));
        svg.appendChild(t);
        ngc++;
        return;
      }
      if (!shownKinds[r[mk]]) return;
      var g = sv('g', {'class': 'marker m-' + r[mk]});
      g.appendChild(sv('line', {x1: x, x2: x, y1: TP, y2: H - B}));
      g.appendChild(sv('title', null, r[mk] + ' (pid ' + r[mp] + ') at ' + fmtMs(r[mt])));
      svg.appendChild(g);
    });
    var cursor = sv('line', {x1: 0, x2: 0, y1: TP, y2: H - B, 'class': 'cursor', visibility: 'hidden'});
    svg.appendChild(cursor);
    var overlay = sv('rect', {x: L, y: TP, width: W - L - R, height: H - TP - B, 'class': 'overlay'});
    overlay.addEventListener('mousemove', function (ev) {
      var box = svg.getBoundingClientRect(), px = ev.clientX - box.left, tv = (px - L) / (W - L - R) * maxX;
      var best = 0;
      for (var i = 0; i < t.rows.length; i++) if (Math.abs(t.rows[i][ti] - tv) < Math.abs(t.rows[best][ti] - tv)) best = i;
      var r = t.rows[best];
      cursor.setAttribute('x1', X(r[ti]));
      cursor.setAttribute('x2', X(r[ti]));
      cursor.setAttribute('visibility', 'visible');
      var lines = [fmtMs(r[ti]) + ' (seq ' + (r[col(t, 'seq')] === null ? '-' : r[col(t, 'seq')]) + ')'];
      series.forEach(function (x) { lines.push(x.name + ': ' + fmtBytes(r[x.i])); });
      lines.push('heap blocks: ' + fmtCount(r[col(t, 'heap_blocks')]));
      showTip(ev, lines);
    });
    overlay.addEventListener('mouseleave', function () { cursor.setAttribute('visibility', 'hidden'); hideTip(); });
    svg.appendChild(overlay);
    s.appendChild(svg);
    var legend = el('div', {'class': 'legend'});
    series.forEach(function (x) { legend.appendChild(el('span', {'class': 'key ' + x.cls}, x.name)); });
    legend.appendChild(el('span', {'class': 'key m-line'}, 'process / interpreter events'));
    if (ngc) legend.appendChild(el('span', {'class': 'key m-gc'}, 'gc runs'));
    s.appendChild(legend);
  }

  /* ---- the flame graph (an icicle: callers above their callees) ---- */
  function flame() {
    var s = section('flame', 'Allocations by stack', 'An icicle: the outermost frames on top, each box as wide as its share. Click a box to zoom, click the top box to go back; the search box marks matching functions.');
    var t = T.flame;
    var ci = {node: col(t, 'node'), parent: col(t, 'parent'), name: col(t, 'function'), calls: col(t, 'calls'),
              bytes: col(t, 'bytes'), peak: col(t, 'peak_bytes'), leaked: col(t, 'leaked_bytes'), depth: col(t, 'depth')};
    if (t.rows.length <= 1) { noData(s, 'No data: the trace has no heap allocations.'); return; }
    var nodes = t.rows.map(function (r) {
      return {id: r[ci.node], parent: r[ci.parent], name: r[ci.name], depth: r[ci.depth], kids: [],
              v: {bytes: r[ci.bytes], calls: r[ci.calls], peak_bytes: r[ci.peak], leaked_bytes: r[ci.leaked]}};
    });
    var byId = {};
    nodes.forEach(function (n) { byId[n.id] = n; });
    nodes.forEach(function (n) { if (n.parent !== null && byId[n.parent]) byId[n.parent].kids.push(n); });
    nodes.forEach(function (n) { n.kids.sort(function (a, b) { return a.name < b.name ? -1 : a.name > b.name ? 1 : 0; }); });
    var root = byId[0], maxDepth = 0;
    nodes.forEach(function (n) { if (n.depth > maxDepth) maxDepth = n.depth; });
    var controls = el('div', {'class': 'controls'});
    var metric = el('select', {id: 'flame-metric'});
    [['bytes', 'bytes allocated'], ['calls', 'calls'], ['peak_bytes', 'live at the peak'], ['leaked_bytes', 'leaked']].forEach(function (o) {
      metric.appendChild(el('option', {value: o[0]}, o[1]));
    });
    var search = el('input', {id: 'flame-search', type: 'search', placeholder: 'search functions'});
    var reset = el('button', {id: 'flame-reset', type: 'button'}, 'reset zoom');
    var status = el('span', {id: 'flame-status', 'class': 'note'});
    controls.appendChild(el('label', null, ['weight ', metric]));
    controls.appendChild(search);
    controls.appendChild(reset);
    controls.appendChild(status);
    s.appendChild(controls);
    if (D.limits && D.limits.flame_omitted)
      s.appendChild(el('p', {'class': 'note'}, fmtCount(D.limits.flame_omitted) + ' deeper nodes are left out of the page (flame.csv has them all).'));
    var W = 900, RH = 17, zoom = root;
    var svg = sv('svg', {id: 'flame-svg', width: W, height: (maxDepth + 1) * RH + 2, 'class': 'flame'});
    s.appendChild(el('div', {'class': 'flame-box'}, svg)); /* deep stacks scroll inside it */
    function isAncestor(a, n) { for (; n; n = byId[n.parent]) if (n === a) return true; return false; }
    function draw() {
      var m = metric.value, q = search.value.toLowerCase(), count = 0, matched = 0;
      while (svg.firstChild) svg.removeChild(svg.firstChild);
      var total = zoom.v[m];
      function box(n, x, w, hl) {
        var g = sv('g', {'class': 'fn' + (hl ? ' match' : '') + (isAncestor(n, zoom) && n !== zoom ? ' above' : ''), 'data-node': n.id});
        g.appendChild(sv('rect', {x: x.toFixed(2), y: n.depth * RH, width: Math.max(w - 0.5, 0.5).toFixed(2), height: RH - 1,
                                  'class': 'node', fill: hl ? null : color(n.name)}));
        if (w > 40) {
          var label = n.name, fit = Math.floor((w - 6) / 7);
          if (label.length > fit) label = label.slice(0, Math.max(fit - 2, 1)) + '..';
          g.appendChild(sv('text', {x: (x + 3).toFixed(2), y: n.depth * RH + 12}, label));
        }
        var share = root.v[m] ? (100 * n.v[m] / root.v[m]).toFixed(2) : '0';
        g.appendChild(sv('title', null, n.name + '\n' + (m === 'calls' ? fmtCount(n.v[m]) + ' calls' : fmtBytes(n.v[m])) +
                                       ' (' + share + '%)'));
        g.addEventListener('click', function () { zoom = n === zoom && byId[n.parent] ? byId[n.parent] : n; draw(); });
        svg.appendChild(g);
        count++;
      }
      /* the zoomed node's ancestors span the width */
      for (var a = byId[zoom.parent]; a; a = byId[a.parent]) if (a.v[m] > 0) box(a, 0, W, q && a.name.toLowerCase().indexOf(q) >= 0);
      (function walk(n, x) {
        if (!(n.v[m] > 0) || total <= 0) return;
        var w = W * n.v[m] / total, hl = q && n.name.toLowerCase().indexOf(q) >= 0;
        if (hl) matched += n.v[m];
        box(n, x, w, hl);
        var cx = x;
        n.kids.forEach(function (k) { walk(k, cx); if (k.v[m] > 0) cx += W * k.v[m] / total; });
      })(zoom, 0);
      svg.setAttribute('data-nodes', count);
      status.textContent = (total > 0 ? count + ' boxes' : 'nothing to show: no stack has this weight') + (q ? '; matches in view: ' + (m === 'calls' ? fmtCount(matched) + ' calls' : fmtBytes(matched)) : '');
    }
    function color(name) {
      var h = 0;
      for (var i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
      return 'hsl(' + (10 + h % 40) + ',' + (70 + h % 20) + '%,' + (55 + (h >> 8) % 15) + '%)';
    }
    metric.addEventListener('change', draw);
    search.addEventListener('input', draw);
    reset.addEventListener('click', function () { zoom = root; draw(); });
    draw();
  }

  /* ---- sortable tables ---- */
  var NUMERIC = {int: 1, id: 1, bytes: 1, real: 1, delta: 1, addr: 1};
  function cellText(c, v) {
    if (v === null || v === undefined) return '-';
    switch (c.kind) {
    case 'bytes': return fmtBytes(v);
    case 'delta': return (v > 0 ? '+' : '') + fmtBytes(v);
    case 'int': return fmtCount(v);
    case 'real': return Number(v).toFixed(c.dec);
    case 'addr': return '0x' + Number(v).toString(16);
    default: return String(v);
    }
  }
  function table(s, t, id, empty) {
    if (!t.rows.length) { noData(s, empty); return; }
    var cols = [];
    t.cols.forEach(function (c, i) { if (c.text) cols.push(i); });
    var tbl = el('table', {id: id, 'class': 'sortable'}), thead = el('thead'), tbody = el('tbody'), tr = el('tr');
    var order = t.rows.slice(), sortCol = -1, asc = true;
    cols.forEach(function (i) {
      var c = t.cols[i], th = el('th', {'class': NUMERIC[c.kind] ? 'num' : null, title: c.csv}, c.title);
      th.addEventListener('click', function () {
        asc = sortCol === i ? !asc : !NUMERIC[c.kind];
        sortCol = i;
        order.sort(function (a, b) {
          var x = a[i], y = b[i];
          if (c.kind === 'stack') { x = x ? (x[1][0] || '') : ''; y = y ? (y[1][0] || '') : ''; }
          if (x === null) return 1;
          if (y === null) return -1;
          var r = x < y ? -1 : x > y ? 1 : 0;
          return asc ? r : -r;
        });
        fill();
      });
      tr.appendChild(th);
    });
    thead.appendChild(tr);
    tbl.appendChild(thead);
    tbl.appendChild(tbody);
    function fill() {
      while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
      order.forEach(function (r) {
        var row = el('tr');
        cols.forEach(function (i) {
          var c = t.cols[i], v = r[i];
          if (c.kind === 'stack') {
            var td = el('td', {'class': 'stack'});
            if (!v || !v[1].length) td.appendChild(document.createTextNode('(no stack)'));
            else v[1].forEach(function (f, k) { td.appendChild(el('div', {'class': k ? 'caller' : 'frame'}, f)); });
            if (v && v[2]) td.appendChild(el('div', {'class': 'caller'}, '... ' + v[2] + ' more frames'));
            row.appendChild(td);
          } else {
            row.appendChild(el('td', {'class': NUMERIC[c.kind] ? 'num' : null,
                                      title: c.kind === 'bytes' && v !== null ? fmtCount(v) + ' bytes' : null}, cellText(c, v)));
          }
        });
        tbody.appendChild(row);
      });
    }
    fill();
    s.appendChild(tbl);
    if (t.rows.length < t.total)
      s.appendChild(el('p', {'class': 'note'}, 'The first ' + fmtCount(t.rows.length) + ' of ' + fmtCount(t.total) +
                                                ' rows (memtrace report --top N; the CSV file has them all).'));
  }
  function tables() {
    var complete = S.complete === '1';
    table(section('leaks', complete ? 'Top leaks' : 'Live when the trace ended', 'Heap blocks still allocated when their process ended, by the stack that allocated them (memtrace leaks).'),
          T.leaks, 'leaks-table', 'No leaks: every heap block allocated during the trace was freed.');
    table(section('temporary', 'Top temporary allocations', 'Allocations freed by the very next heap call of their thread (memtrace temporary).'),
          T.temporary, 'temporary-table', 'No temporary allocations.');
    table(section('top', 'Allocation sites by bytes', 'Every allocating stack with its calls, bytes and share of the peak (memtrace top).'),
          T.top, 'top-table', 'No heap allocations.');
    table(section('growth', 'Growth chains', 'Blocks grown or shrunk by realloc, by the stack of the realloc (memtrace growth).'),
          T.growth, 'growth-table', 'No realloc chains: no realloc resized a block allocated during the trace.');
    table(section('gc', 'Garbage collector runs', 'Each collection with the allocation that triggered it, the longest first (memtrace gc lists them in order, per interpreter).'),
          T.gc, 'gc-table', 'No garbage collector runs were recorded in this trace.');
  }

  /* ---- the heap layout maps: the bundled allocator's, pymalloc's ---- */
  /* One map of the rows of one allocator: a slider over the moments that
   * have arenas (ids `prefix`-slider, -time, -grid), one line per arena,
   * one cell per pool. */
  function poolMap(s, t, rows, prefix) {
    var ci = {m: col(t, 'moment'), time: col(t, 'time_ms'), pid: col(t, 'pid'), arena: col(t, 'arena'), pools: col(t, 'pools'),
              blocks: col(t, 'blocks_used'), bytes: col(t, 'bytes_in_use')};
    /* the moments that have arenas, in order (before the first arena there is nothing to draw) */
    var byMoment = {}, moments = [];
    rows.forEach(function (r) {
      if (!byMoment[r[ci.m]]) { byMoment[r[ci.m]] = []; moments.push(r[ci.m]); }
      byMoment[r[ci.m]].push(r);
    });
    moments.sort(function (a, b) { return a - b; });
    var last = moments.length - 1;
    var slider = el('input', {id: prefix + '-slider', type: 'range', min: 0, max: last, value: last, step: 1});
    var label = el('span', {id: prefix + '-time'});
    s.appendChild(el('div', {'class': 'controls'}, [el('label', null, ['moment ', slider]), label]));
    var grid = el('div', {id: prefix + '-grid', 'class': 'grid'});
    s.appendChild(grid);
    var names = {'-': 'uncarved', e: 'empty', F: 'full'};
    function draw() {
      var rs = byMoment[moments[Number(slider.value)]];
      label.textContent = ' ' + fmtMs(rs[0][ci.time]) + ': ' + rs.length + ' arena' + (rs.length === 1 ? '' : 's');
      while (grid.firstChild) grid.removeChild(grid.firstChild);
      rs.forEach(function (r) {
        var line = el('div', {'class': 'arena'});
        line.appendChild(el('span', {'class': 'alabel'}, 'pid ' + r[ci.pid] + ' 0x' + Number(r[ci.arena]).toString(16)));
        var map = r[ci.pools];
        for (var i = 0; i < map.length; i++) {
          var ch = map[i];
          line.appendChild(el('span', {'class': 'pool p' + (ch === '-' ? 'u' : ch), title: 'pool ' + i + ': ' +
                                       (names[ch] || 'used, ' + ch + '0-' + ch + '9% of its blocks')}));
        }
        line.appendChild(el('span', {'class': 'note'}, ' ' + fmtCount(r[ci.blocks]) + ' blocks, ' + fmtBytes(r[ci.bytes])));
        grid.appendChild(line);
      });
    }
    slider.addEventListener('input', draw);
    draw();
  }

  function layout() {
    var s = section('layout', 'Heap layout', 'The arenas of the bundled allocator and of CPython\'s pymalloc at a moment of the run, one row per arena, one cell per 16 KiB pool, coloured by how full it is. Move a slider to change the moment.');
    var t = T.layout, lay = {}, ai = col(t, 'allocator');
    T.layers.rows.forEach(function (r) { lay[r[1]] = r[3]; });
    var bundled = t.rows.filter(function (r) { return r[ai] === 'bundled'; });
    var pym = t.rows.filter(function (r) { return r[ai] === 'pymalloc'; });
    if (bundled.length) {
      s.appendChild(el('h3', null, 'Bundled allocator'));
      poolMap(s, t, bundled, 'layout');
    } else {
      noData(s, 'Bundled allocator: no data (the trace has no events of the bundled allocator; record with memtrace run --allocator=bundled).');
    }
    if (pym.length) {
      s.appendChild(el('h3', null, 'pymalloc'));
      poolMap(s, t, pym, 'pylayout');
    }
    var legend = el('div', {'class': 'legend'});
    [['pu', 'uncarved'], ['pe', 'empty'], ['p0', 'used, few blocks'], ['p5', 'used, half'], ['p9', 'used, nearly full'], ['pF', 'full']].forEach(function (x) {
      legend.appendChild(el('span', null, [el('span', {'class': 'pool ' + x[0]}), ' ' + x[1] + ' ']));
    });
    if (bundled.length || pym.length) s.appendChild(legend);
    s.appendChild(el('p', {id: 'pymalloc-note', 'class': 'nodata'},
                     pym.length ? 'pymalloc: rebuilt from the interpreter\'s object, memory and arena events (memtrace layout --allocator pymalloc); a pool\'s class is that of its blocks, its capacity (pool size - 48) / block size.'
                     : lay.pyarena ? 'pymalloc: ' + fmtCount(lay.pyarena) + ' arena events recorded, but the interpreter did not use pymalloc (no pool map).'
                     : 'pymalloc: no data in this trace.'));
  }

  function processes() {
    table(section('processes', 'Processes', 'One row per process image (a fork child and an exec\'d image each have their own).'),
          T.processes, 'processes-table', 'No process reported in.');
  }

  header();
  layers();
  timeline();
  flame();
  tables();
  layout();
  processes();
  document.title = 'memtrace report: ' + (S.command || D.file);
  document.body.setAttribute('data-ready', '1');
})();
