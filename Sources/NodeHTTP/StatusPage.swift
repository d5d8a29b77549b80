/// The status page: one HTML document, no external assets. It carries the status it was made with and draws it
/// at once, then fetches `/status.json` every second and draws again. Every value goes in as text, never as
/// markup: peer ids come from the wire.
public enum StatusPage {
    public static func html(_ status: NodeStatus) -> String {
        // Inside <script>, "</script" or "<!--" in a peer's name would change how the page parses: in JSON, "<" may
        // be written "\u003c" (it only ever stands inside strings).
        let initial = String(decoding: status.json(), as: UTF8.self).replacingOccurrences(of: "<", with: "\\u003c")
        return head + "<script>const initial = \(initial);\n" + script + "</script></body></html>\n"
    }

    private static let head = """
    <!doctype html>
    <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
    <title>lsp2p node</title>
    <style>
    body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
    h1 { font-size: 1.3em; margin: 0 0 .2em; } h2 { font-size: 1.05em; margin: 1.2em 0 .3em; }
    .sub { color: #666; margin-bottom: 1em; }
    .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(11em, 1fr)); gap: .5em; }
    .fig { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .5em .7em; }
    .fig .k { color: #666; font-size: .85em; } .fig .v { font-size: 1.3em; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
    table { border-collapse: collapse; background: #fff; } td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
    th { background: #f0f0f0; font-weight: 600; } .bar { height: .6em; background: #eee; border-radius: 3px; overflow: hidden; }
    .bar > div { height: 100%; background: #4c78a8; } .late { color: #b35900; } .missing { color: #b00020; }
    img { max-width: 100%; background: #fff; border: 1px solid #ddd; }
    </style></head><body>
    <h1 id="title">lsp2p</h1><div class="sub" id="subtitle"></div>
    <noscript>This page draws with JavaScript; the same figures are at <a href="/status.json">/status.json</a>.</noscript>
    <div id="main"></div>

    """

    private static let script = """
    function el(tag, attrs, ...kids) {
      const e = document.createElement(tag);
      for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
      for (const kid of kids) e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
      return e;
    }
    function fig(id, label, value, cls) {
      return el('div', {class: 'fig'}, el('div', {class: 'k'}, label), el('div', {class: 'v' + (cls ? ' ' + cls : ''), id: id}, value));
    }
    function rate(bps) {
      if (bps == null) return '-';
      const units = [['G', 1e9], ['M', 1e6], ['k', 1e3]];
      for (const [u, f] of units) if (bps >= f) return (bps / f).toFixed(bps >= 10 * f ? 0 : 1) + ' ' + u + 'bit/s';
      return Math.round(bps) + ' bit/s';
    }
    function ms(v) { return v == null ? '-' : v.toFixed(1) + ' ms'; }
    function duration(s) {
      const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = Math.floor(s % 60);
      return (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + sec + 's';
    }
    function sparkline(values) {
      const w = 240, h = 40, ns = 'http://www.w3.org/2000/svg';
      const svg = document.createElementNS(ns, 'svg');
      svg.setAttribute('width', w); svg.setAttribute('height', h); svg.setAttribute('id', 'sparkline');
      const max = Math.max(1, ...values);
      const points = values.map((v, i) => [(values.length < 2 ? 0 : i * w / (values.length - 1)), h - 2 - v / max * (h - 4)]);
      const line = document.createElementNS(ns, 'polyline');
      line.setAttribute('points', points.map(p => p[0].toFixed(1) + ',' + p[1].toFixed(1)).join(' '));
      line.setAttribute('fill', 'none'); line.setAttribute('stroke', '#4c78a8'); line.setAttribute('stroke-width', '1.5');
      svg.append(line);
      const title = document.createElementNS(ns, 'title');
      title.textContent = 'worst latency each second, last ' + values.length + ' s (max ' + max.toFixed(0) + ' ms)';
      svg.append(title);
      return svg;
    }
    function draw(s) {
      document.getElementById('title').textContent = 'lsp2p ' + s.role;
      document.getElementById('subtitle').replaceChildren(el('span', {id: 'node_id'}, s.id), ' · up ', el('span', {id: 'uptime'}, duration(s.uptime_s)),
        el('span', {id: 'uptime_s', hidden: ''}, s.uptime_s));
      const main = [];
      main.push(el('h2', {}, 'Stream'), el('div', {class: 'grid'},
        fig('stream_rate', 'stream rate', rate(s.stream_rate_bps)), fig('substreams', 'substreams', s.substreams),
        fig('delay', 'delay from the source', ms(s.delay_ms)), fig('links', 'links', s.links),
        fig('link_failures', 'link failures', s.link_failures), fig('chunks_dropped', 'chunks not sent', s.chunks_dropped)));
      if (s.playback) {
        const p = s.playback;
        main.push(el('h2', {}, 'Playback'), el('div', {class: 'grid'},
          fig('received', 'received', p.received), fig('on_time', 'on time', p.on_time),
          fig('late', 'late', p.late, 'late'), fig('missing', 'missing', p.missing, 'missing'),
          fig('latency_p50', 'latency p50', ms(p.latency_p50_ms)), fig('latency_p99', 'latency p99', ms(p.latency_p99_ms))),
          el('div', {class: 'fig', style: 'margin-top:.5em;display:inline-block'}, el('div', {class: 'k'}, 'latency, last minute'), sparkline(p.sparkline_ms)));
      }
      if (s.serve) {
        main.push(el('h2', {}, 'Served'), el('div', {class: 'grid'},
          fig('serve_url', 'stream', s.serve.url), fig('serve_clients', 'players reading', s.serve.clients),
          fig('serve_dropped', 'dropped (too slow)', s.serve.dropped)));
      }
      const u = s.upload;
      const share = u.allowed_bps ? Math.min(1, u.used_bps / u.allowed_bps) : 0;
      main.push(el('h2', {}, 'Upload'), el('div', {class: 'grid'},
        fig('upload_used', 'used', rate(u.used_bps)), fig('upload_allowed', 'allowed', u.allowed_bps ? rate(u.allowed_bps) : 'unlimited'),
        fig('units', 'units used / offered', u.units_used + ' / ' + (u.units >= 10000 ? 'any' : u.units)), fig('bytes_sent', 'bytes sent', u.bytes_sent),
        fig('budget', 'budget', u.budget_bytes == null ? 'none' : u.budget_bytes + ' bytes' + (u.retired ? ' (spent: a leaf now)' : ''))),
        el('div', {class: 'bar', style: 'margin-top:.4em;max-width:30em'}, el('div', {style: 'width:' + (share * 100).toFixed(1) + '%'})));
      if (s.role !== 'origin') {
        main.push(el('h2', {}, 'Parents'), el('table', {id: 'parents'}, el('tr', {}, el('th', {}, 'substream'), el('th', {}, 'parent'), el('th', {}, 'delay')),
          ...s.parents.map(p => el('tr', {}, el('td', {}, p.substream), el('td', {}, p.peer || '(looking)'), el('td', {}, ms(p.delay_ms))))));
      }
      main.push(el('h2', {}, 'Children (' + s.children.length + ')'), el('table', {id: 'children'},
        el('tr', {}, el('th', {}, 'peer'), el('th', {}, 'substreams')),
        ...s.children.map(c => el('tr', {}, el('td', {}, c.peer), el('td', {}, c.substreams.join(' '))))));
      if (s.mesh_svg) {
        main.push(el('h2', {}, 'The mesh'), el('img', {src: '/mesh.svg?t=' + Math.floor(s.uptime_s / 10), alt: 'the mesh', id: 'mesh'}));
      }
      document.getElementById('main').replaceChildren(...main);
    }
    draw(initial);
    setInterval(() => fetch('/status.json', {cache: 'no-store'}).then(r => r.json()).then(draw).catch(() => {}), 1000);

    """
}
