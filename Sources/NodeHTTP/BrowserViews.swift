import ChunkMesh
import MeshCore
import NIOCore

/// Takes the stream's MPEG-TS in order and makes something else of it (fragmented MP4, where FFmpeg is linked).
public protocol TSFollower: AnyObject, Sendable {
    /// The next chunk's bytes, in stream order; `randomAccess`: it starts with PAT, PMT and a keyframe.
    func write(_ bytes: ByteBuffer, randomAccess: Bool)
    /// The stream ended.
    func finish()
    /// The origin started a new run (its first chunks follow): what was made of the old one is no use.
    func newRun()
}

/// What a node serves to browsers, phones and TVs from the chunks it passes (issue 21):
/// - `/live.m3u8`: HLS made of whole chunks, no FFmpeg (any node);
/// - `/stream.mp4`: fragmented MP4, remuxed by a `TSFollower` the caller makes (nodes built with FFmpeg);
/// - `/watch`: one page with a `<video>` on the best of the two for the browser that opens it.
public final class BrowserViews: Sendable {
    public typealias MakeFragmenter = @Sendable (StreamHub) -> TSFollower

    public let hls: LiveSegments
    /// `/stream.mp4`'s clients; nil where no fragmenter was given.
    public let mp4: StreamHub?
    private let fragmenter: TSFollower?

    public init(fragmenter make: MakeFragmenter?) {
        // Each browser may hold a backlog: fewer of them than players of /stream.ts.
        let hub = make == nil ? nil : StreamHub(contentType: "video/mp4", needsHeader: true, maxClients: 32)
        let fragmenter = hub.map { make!($0) }
        self.mp4 = hub
        self.fragmenter = fragmenter
        self.hls = LiveSegments(follower: fragmenter)
    }

    /// A chunk, in any order (put in order by the HLS segmenter, which hands them on to the fragmenter).
    public func add(_ chunk: Chunk) { hls.add(chunk) }
    /// Chunks were given up upstream.
    public func skipped() { hls.skipped() }
    public func finish() { hls.finish() }
}

extension Routes {
    /// `/watch`, `/live.m3u8` with its segments, and `/stream.mp4` where there is one.
    public mutating func serveBrowsers(_ views: BrowserViews) {
        serveHLS(views.hls)
        if let mp4 = views.mp4 { streams["/stream.mp4"] = mp4 }
        let watch = Page("text/html; charset=utf-8", WatchPage.html(hasMP4: views.mp4 != nil))
        quickPage("/watch") { watch }
    }
}

/// `GET /watch`: the live stream in a `<video>`, muted so that it may start by itself, a tap to unmute, and the
/// node's status line under it. No external assets; values from the node go in as text.
///
/// Which stream: `/stream.mp4` where the node has it (the lowest delay; Chrome, Firefox, Android), HLS on Apple's
/// browsers (which play HLS and want byte ranges for MP4) and wherever MP4 is not served. `?via=hls` or
/// `?via=mp4` chooses. A stream that ends or fails is opened again after a second. The page records when the
/// first frame showed (`window.lsp2pWatch`), for tests and benchmarks.
enum WatchPage {
    static func html(hasMP4: Bool) -> String {
        head + "<script>const hasMP4 = \(hasMP4);\n" + script + "</script></body></html>\n"
    }

    private static let head = """
    <!doctype html>
    <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
    <title>lsp2p live</title>
    <style>
    html, body { margin: 0; background: #000; color: #ddd; font: 14px/1.4 system-ui, sans-serif; }
    #box { position: relative; width: 100vw; max-height: 90vh; aspect-ratio: 16 / 9; margin: 0 auto; }
    video { width: 100%; height: 100%; background: #000; display: block; }
    #unmute { position: absolute; left: 1em; bottom: 1em; padding: .5em 1em; font-size: 1em; border: 0; border-radius: 4px;
              background: rgba(255, 255, 255, .85); color: #000; cursor: pointer; }
    #status { padding: .4em 1em; font-variant-numeric: tabular-nums; color: #aaa; }
    #status a { color: #8ab4f8; }
    </style></head><body>
    <div id="box"><video id="video" muted autoplay playsinline></video><button id="unmute" hidden>Tap to unmute</button></div>
    <div id="status">connecting…</div>
    <noscript><p>Without JavaScript: open <a href="/live.m3u8">/live.m3u8</a> in a player.</p></noscript>

    """

    private static let script = """
    const video = document.getElementById('video');
    const statusLine = document.getElementById('status');
    const unmute = document.getElementById('unmute');
    const watch = window.lsp2pWatch = {firstFrameMs: null, via: null, reloads: 0, error: null};
    function choose() {
      const asked = new URLSearchParams(location.search).get('via');
      if (asked === 'hls' || (asked === 'mp4' && hasMP4)) return asked;
      const ua = navigator.userAgent;
      const apple = /iPhone|iPad|iPod|Macintosh/.test(ua) && !/Chrome|Chromium|CriOS|Android|Firefox/.test(ua);
      const hls = video.canPlayType('application/vnd.apple.mpegurl') !== '';
      if (hasMP4 && !(apple && hls)) return 'mp4';
      return 'hls';
    }
    function open() {
      watch.via = choose();
      if (watch.via === 'mp4') return start('/stream.mp4');
      // A live playlist shorter than three segments (a node that just joined) is an error to Chromium: wait.
      fetch('/live.m3u8', {cache: 'no-store'}).then(r => r.text())
        .then(text => text.split('#EXTINF').length > 3 || text.includes('#EXT-X-ENDLIST') ? start('/live.m3u8') : setTimeout(open, 500))
        .catch(() => setTimeout(open, 1000));
    }
    function start(path) {
      video.src = path + '?t=' + Date.now();
      video.play().catch(() => {});
    }
    function again() {
      watch.reloads += 1;
      setTimeout(open, 1000);
    }
    function firstFrame() {
      if (watch.firstFrameMs === null) watch.firstFrameMs = performance.now();
    }
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(firstFrame);
    else video.addEventListener('playing', firstFrame, {once: true});
    video.addEventListener('error', () => {
      watch.error = video.error ? video.error.code + ' ' + (video.error.message || '') : 'error';
      again();
    });
    video.addEventListener('ended', again);
    video.addEventListener('playing', () => { unmute.hidden = !video.muted; });
    unmute.addEventListener('click', () => { video.muted = false; unmute.hidden = true; video.play().catch(() => {}); });
    video.addEventListener('click', () => { if (video.muted) unmute.click(); });
    function line(s) {
      const parts = ['lsp2p ' + s.role, s.id];
      if (s.delay_ms != null) parts.push(s.delay_ms.toFixed(0) + ' ms from the source');
      if (s.playback) parts.push(s.playback.on_time + ' chunks on time, ' + s.playback.missing + ' missing');
      parts.push((s.children || []).length + ' children');
      return parts.join(' · ');
    }
    function poll() {
      fetch('/status.json', {cache: 'no-store'}).then(r => r.ok ? r.json() : Promise.reject())
        .then(s => { statusLine.textContent = line(s) + ' · via ' + watch.via; })
        .catch(() => { statusLine.textContent = 'live via ' + watch.via; });
    }
    open();
    poll();
    setInterval(poll, 2000);

    """
}
