// MotionStream live client: one WebSocket session as described in docs/PROTOCOL.md.
// #stream only ever receives decoded frames, #overlay shows the controls and takes the pointer,
// #preview shows the uploaded image until the first frame covers it.

const HEADER_BYTES = 16;         // uint32 index, float32 latency ms, float32 fps, uint32 dropped (little-endian)
const MAX_ERRORS = 5;            // error lines kept on screen
const PATH_FRAMES = 48;          // frames a drawn path takes
const PATH_MAX_VERTICES = 64;
const MIN_MOVE_INTERVAL_MS = 33; // drag moves: at most ~30 messages per second
const FPS_WINDOW_MS = 2000;      // client receive-rate window
const FADE_MS = 1200;            // a released drag's trail fades out over this time

const WARNINGS = {
  warp: 'warp baseline: the first frame warped along the tracks, no generative model',
  untrained: 'untrained model: random weights, the video will not follow the image or drags',
};

const $ = (id) => document.getElementById(id);
const ui = {
  view: $('view'), preview: $('preview'), stream: $('stream'), overlay: $('overlay'), hint: $('hint'),
  banner: $('banner'), modelInfo: $('model-info'), errors: $('errors'),
  imageInput: $('image-input'), prompt: $('prompt'),
  start: $('start'), pause: $('pause'), restart: $('restart'), clear: $('clear'),
  modes: { drag: $('mode-drag'), pin: $('mode-pin'), path: $('mode-path') },
  grid: $('grid'), spacing: $('spacing'),
  download: $('download'), downloadTracks: $('download-tracks'), downloadReplay: $('download-replay'),
  st: {
    state: $('st-state'), frame: $('st-frame'), fps: $('st-fps'), latency: $('st-latency'),
    rfps: $('st-rfps'), dropped: $('st-dropped'),
  },
};
const streamCtx = ui.stream.getContext('2d');
const previewCtx = ui.preview.getContext('2d');
const overlayCtx = ui.overlay.getContext('2d');

const app = {
  ws: null,
  connecting: null,      // promise of the current connection's `hello`
  session: null,
  model: null,
  limits: null,
  image: null,           // the `image` message: model = image * scale + offset
  uploadBytes: null,     // the last upload sent
  imageBytes: null,      // the last upload the server accepted, sent again if the session has to be reopened
  previewBitmap: null,
  state: 'connecting',   // server state (idle | running | paused), or connecting | disconnected

  framesReceived: 0,
  framesDrawn: 0,
  lastFrameIndex: -1,    // index of the frame shown on #stream (-1: none in this stream)
  lastQueuedIndex: -1,   // highest index handed to the decoder in this stream
  epoch: 0,              // bumped when the stream starts over: decodes of an older stream are discarded
  serverFps: null,
  latencyMs: null,
  dropped: 0,
  receiveTimes: [],
  errors: [],

  mode: 'drag',
  active: null,          // the drag or path being drawn
  pins: [],              // image points
  paths: [],             // arrays of image points
  releasedDrags: [],     // { trail, releasedAt }, drawn fading
  lastMoveSentAt: 0,
  moveTimer: null,
};

// Read-only view for tests and debugging.
window.motionstream = Object.freeze({
  get session() { return app.session; },
  get model() { return app.model; },
  get limits() { return app.limits; },
  get image() { return app.image; },
  get state() { return app.state; },
  get framesReceived() { return app.framesReceived; },
  get framesDrawn() { return app.framesDrawn; },
  get lastFrameIndex() { return app.lastFrameIndex; },
  get receiveFps() { return receiveFps(); },
  get serverFps() { return app.serverFps; },
  get latencyMs() { return app.latencyMs; },
  get dropped() { return app.dropped; },
  get errors() { return app.errors.slice(); },
});

// ---------------------------------------------------------------- connection

function connect() {
  const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  app.ws = ws;
  app.session = null;
  setState('connecting');

  app.connecting = new Promise((resolve, reject) => {
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') onText(ev.data, resolve);
      else onFrame(ev.data);
    };
    ws.onclose = (ev) => {
      if (app.ws !== ws) return;
      const why = ev.reason ? `: ${ev.reason}` : '';
      if (!app.session) {
        // The server closes without `hello` only when it is full.
        showError(`the server refused the session (code ${ev.code}${why})`);
        reject(new Error('refused'));
      } else {
        showError(`connection closed (code ${ev.code}${why}); upload or press Start to open a new session`);
      }
      app.session = null;
      setState('disconnected');
    };
  });
  app.connecting.catch(() => {});  // reported through showError
  return app.connecting;
}

// Resolves once a session is open; a reopened session gets the prompt and the last image again.
async function ensureSession() {
  if (app.session && app.ws && app.ws.readyState === WebSocket.OPEN) return true;
  if (app.state === 'connecting' && app.connecting) {
    try { await app.connecting; return true; } catch { return false; }
  }
  try { await connect(); } catch { return false; }
  clearControlsLocally();
  if (ui.prompt.value) send({ type: 'prompt', text: ui.prompt.value });
  if (app.imageBytes) {
    app.uploadBytes = app.imageBytes;
    app.ws.send(app.imageBytes);
  }
  return true;
}

function send(message) {
  if (!app.ws || app.ws.readyState !== WebSocket.OPEN) return false;
  app.ws.send(JSON.stringify(message));
  return true;
}

function onText(text, helloReceived) {
  let msg;
  try { msg = JSON.parse(text); } catch { showError('the server sent a text message that is not JSON'); return; }
  switch (msg.type) {
    case 'hello': onHello(msg); helloReceived(); break;
    case 'image': onImage(msg); break;
    case 'state': onState(msg); break;
    case 'error': showError(String(msg.message)); break;
    default: console.warn('unknown message from the server', msg);
  }
}

function onHello(msg) {
  app.session = msg.session;
  app.model = Object.freeze({ ...msg.model });
  app.limits = Object.freeze({ ...msg.limits });
  setModelSize(app.model.width, app.model.height);

  const m = app.model;
  ui.modelInfo.textContent =
    `${m.name} · backend ${m.backend} · ${m.width}x${m.height} · ${m.fps} fps · ` +
    `${m.chunk_frames} frames/chunk · ${m.steps} steps · ${m.trained ? 'trained' : 'random weights'}`;
  const warning = m.backend === 'warp' ? WARNINGS.warp : (m.trained ? '' : WARNINGS.untrained);
  ui.banner.textContent = warning;
  ui.banner.hidden = !warning;

  const base = `/api/sessions/${encodeURIComponent(app.session)}`;
  setLink(ui.download, `${base}/recording.mp4`);
  setLink(ui.downloadTracks, `${base}/tracks.json`);
  setLink(ui.downloadReplay, `${base}/replay.json`);
  setState('idle');
}

function onImage(msg) {
  app.image = Object.freeze({ ...msg });
  app.imageBytes = app.uploadBytes;
  if (msg.model_width !== ui.stream.width || msg.model_height !== ui.stream.height) {
    setModelSize(msg.model_width, msg.model_height);
  }
  // Frames of the previous image no longer apply: show the new image until its stream starts.
  startNewStream();
  streamCtx.clearRect(0, 0, ui.stream.width, ui.stream.height);
  drawPreview();
  requestOverlay();
  updateButtons();
}

function onState(msg) {
  // `frame` is the next frame to be generated: at or below one already received means the stream started over.
  if (msg.frame <= app.lastQueuedIndex) startNewStream();
  setState(msg.state);
}

function startNewStream() {
  app.epoch++;
  app.lastFrameIndex = -1;
  app.lastQueuedIndex = -1;
  app.receiveTimes = [];
}

// ---------------------------------------------------------------- frames

function onFrame(buffer) {
  if (buffer.byteLength <= HEADER_BYTES) { showError('the server sent a frame without a JPEG'); return; }
  const header = new DataView(buffer, 0, HEADER_BYTES);
  const index = header.getUint32(0, true);
  app.latencyMs = header.getFloat32(4, true);
  app.serverFps = header.getFloat32(8, true);
  app.dropped = header.getUint32(12, true);
  app.framesReceived++;
  app.receiveTimes.push(performance.now());

  if (index < app.lastQueuedIndex) return;  // late frame of this stream: keep the order
  app.lastQueuedIndex = index;

  // Decodes may finish out of order: the epoch and index checks below keep the newest frame on screen.
  const epoch = app.epoch;
  const jpeg = new Blob([new Uint8Array(buffer, HEADER_BYTES)], { type: 'image/jpeg' });
  createImageBitmap(jpeg).then((bitmap) => {
    if (epoch === app.epoch && index >= app.lastFrameIndex) {
      streamCtx.drawImage(bitmap, 0, 0, ui.stream.width, ui.stream.height);
      app.lastFrameIndex = index;
      app.framesDrawn++;
      if (app.framesDrawn === 1) updateButtons();
      ui.hint.textContent = '';
    }
    bitmap.close();
  }, () => showError(`frame ${index}: the JPEG could not be decoded`));
}

function receiveFps() {
  const now = performance.now();
  const times = app.receiveTimes;
  while (times.length && times[0] < now - FPS_WINDOW_MS) times.shift();
  if (times.length < 2) return 0;
  return (times.length - 1) * 1000 / (now - times[0]);
}

// ---------------------------------------------------------------- geometry

function setModelSize(width, height) {
  for (const canvas of [ui.stream, ui.preview]) {
    if (canvas.width !== width) canvas.width = width;
    if (canvas.height !== height) canvas.height = height;
  }
  ui.view.style.aspectRatio = `${width} / ${height}`;
  resizeOverlay();
  drawPreview();
}

// The overlay's backing store follows its displayed size so that lines stay sharp.
function resizeOverlay() {
  const rect = ui.view.getBoundingClientRect();
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(rect.width * ratio));
  const height = Math.max(1, Math.round(rect.height * ratio));
  if (ui.overlay.width !== width || ui.overlay.height !== height) {
    ui.overlay.width = width;
    ui.overlay.height = height;
  }
  requestOverlay();
}

const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
const round2 = (v) => Math.round(v * 100) / 100;

// Pointer -> model pixels (undoing the CSS scaling) -> image pixels (undoing the fit), kept inside the image.
function eventToImage(ev) {
  const rect = ui.overlay.getBoundingClientRect();
  const mx = (ev.clientX - rect.left) / rect.width * ui.stream.width;
  const my = (ev.clientY - rect.top) / rect.height * ui.stream.height;
  const m = app.image;
  return {
    x: round2(clamp((mx - m.offset_x) / m.scale_x, 0, m.width - 1)),
    y: round2(clamp((my - m.offset_y) / m.scale_y, 0, m.height - 1)),
  };
}

// Image pixels -> overlay backing pixels.
function imageToOverlay(p) {
  const m = app.image;
  const kx = ui.overlay.width / ui.stream.width, ky = ui.overlay.height / ui.stream.height;
  return { x: (p.x * m.scale_x + m.offset_x) * kx, y: (p.y * m.scale_y + m.offset_y) * ky };
}

// ---------------------------------------------------------------- controls

function setMode(mode) {
  app.mode = mode;
  for (const [name, button] of Object.entries(ui.modes)) button.setAttribute('aria-pressed', String(name === mode));
}

function dragSettings() {
  const grid = clamp(Math.round(Number(ui.grid.value)) || 3, 1, 5);
  const spacing = Math.max(1, Math.round(Number(ui.spacing.value)) || 8);
  return { grid, spacing };
}

function moveInterval() {
  // Leave at least half of the server's message budget for everything else.
  const perSecond = app.limits && app.limits.max_messages_per_second;
  return perSecond > 0 ? Math.max(MIN_MOVE_INTERVAL_MS, 2000 / perSecond) : MIN_MOVE_INTERVAL_MS;
}

function onPointerDown(ev) {
  if (!app.image || ev.button !== 0 || app.active) return;
  ev.preventDefault();
  const p = eventToImage(ev);
  if (app.mode === 'pin') {
    app.pins.push(p);
    send({ type: 'pin', x: p.x, y: p.y, frame: app.lastFrameIndex });
    requestOverlay();
    return;
  }
  ui.overlay.setPointerCapture(ev.pointerId);
  if (app.mode === 'drag') {
    const { grid, spacing } = dragSettings();
    app.active = { kind: 'drag', pointerId: ev.pointerId, grid, spacing, trail: [p], pending: null };
    send({ type: 'drag', phase: 'down', x: p.x, y: p.y, frame: app.lastFrameIndex, grid, spacing });
  } else {
    app.active = { kind: 'path', pointerId: ev.pointerId, points: [p] };
  }
  requestOverlay();
}

function onPointerMove(ev) {
  const active = app.active;
  if (!active || ev.pointerId !== active.pointerId) return;
  const p = eventToImage(ev);
  const points = active.kind === 'drag' ? active.trail : active.points;
  const last = points[points.length - 1];
  if (Math.hypot(p.x - last.x, p.y - last.y) < 0.5) return;  // keeps long holds from piling up points
  points.push(p);
  if (active.kind === 'drag') {
    active.pending = p;
    scheduleMove();
  }
  requestOverlay();
}

// Sends the latest cursor position at most once per moveInterval().
function scheduleMove() {
  if (app.moveTimer !== null) return;
  const wait = app.lastMoveSentAt + moveInterval() - performance.now();
  if (wait <= 0) flushMove();
  else app.moveTimer = setTimeout(flushMove, wait);
}

function flushMove() {
  app.moveTimer = null;
  const active = app.active;
  if (!active || active.kind !== 'drag' || !active.pending) return;
  const p = active.pending;
  active.pending = null;
  send({ type: 'drag', phase: 'move', x: p.x, y: p.y, frame: app.lastFrameIndex });
  app.lastMoveSentAt = performance.now();
}

function onPointerUp(ev) {
  const active = app.active;
  if (!active || ev.pointerId !== active.pointerId) return;
  app.active = null;
  if (ui.overlay.hasPointerCapture(ev.pointerId)) ui.overlay.releasePointerCapture(ev.pointerId);
  clearTimeout(app.moveTimer);
  app.moveTimer = null;

  if (active.kind === 'drag') {
    const p = ev.type === 'pointerup' ? eventToImage(ev) : active.trail[active.trail.length - 1];
    active.trail.push(p);
    send({ type: 'drag', phase: 'up', x: p.x, y: p.y, frame: app.lastFrameIndex });
    app.releasedDrags.push({ trail: active.trail, releasedAt: performance.now() });
  } else {
    if (ev.type === 'pointerup') active.points.push(eventToImage(ev));
    const points = simplify(active.points, PATH_MAX_VERTICES);
    if (points.length >= 2 && pathLength(points) >= 2) {
      app.paths.push(points);
      send({ type: 'path', points: points.map((q) => [q.x, q.y]), frame: app.lastFrameIndex, frames: PATH_FRAMES });
    }
  }
  requestOverlay();
}

function pathLength(points) {
  let length = 0;
  for (let i = 1; i < points.length; i++) length += Math.hypot(points[i].x - points[i - 1].x, points[i].y - points[i - 1].y);
  return length;
}

// Ramer-Douglas-Peucker, with a tolerance that grows until at most maxVertices remain.
function simplify(points, maxVertices) {
  let tolerance = 0.5;
  let result = rdp(points, tolerance);
  while (result.length > maxVertices) {
    tolerance *= 1.5;
    result = rdp(points, tolerance);
  }
  return result;
}

function rdp(points, tolerance) {
  if (points.length <= 2) return points.slice();
  const keep = new Uint8Array(points.length);
  keep[0] = keep[points.length - 1] = 1;
  const stack = [[0, points.length - 1]];
  while (stack.length) {
    const [first, last] = stack.pop();
    const a = points[first], b = points[last];
    const dx = b.x - a.x, dy = b.y - a.y;
    const length = Math.hypot(dx, dy);
    let worst = -1, worstDistance = tolerance;
    for (let i = first + 1; i < last; i++) {
      const p = points[i];
      const distance = length > 0
        ? Math.abs(dy * (p.x - a.x) - dx * (p.y - a.y)) / length
        : Math.hypot(p.x - a.x, p.y - a.y);
      if (distance > worstDistance) { worst = i; worstDistance = distance; }
    }
    if (worst >= 0) {
      keep[worst] = 1;
      stack.push([first, worst], [worst, last]);
    }
  }
  return points.filter((_, i) => keep[i]);
}

function clearControlsLocally() {
  if (app.active && ui.overlay.hasPointerCapture(app.active.pointerId)) {
    ui.overlay.releasePointerCapture(app.active.pointerId);
  }
  app.active = null;
  clearTimeout(app.moveTimer);
  app.moveTimer = null;
  app.pins = [];
  app.paths = [];
  app.releasedDrags = [];
  requestOverlay();
}

async function uploadImage(file) {
  if (app.limits && file.size > app.limits.max_upload_bytes) {
    showError(`the image is ${file.size} bytes, the server takes at most ${app.limits.max_upload_bytes}`);
    return;
  }
  const bytes = await file.arrayBuffer();
  try {
    app.previewBitmap = await createImageBitmap(new Blob([bytes], { type: file.type || 'image/png' }));
  } catch {
    app.previewBitmap = null;  // the server decides whether it is an image
  }
  if (!(await ensureSession())) return;
  app.uploadBytes = bytes;
  app.ws.send(bytes);
  // Controls are in pixels of the previous image: drop them on both sides.
  clearControlsLocally();
  send({ type: 'clear' });
}

async function toggleStart() {
  if (app.state === 'running' || app.state === 'paused') { send({ type: 'stop' }); return; }
  if (!app.imageBytes) { showError('upload an image first'); return; }
  if (await ensureSession()) send({ type: 'start' });
}

function togglePause() {
  if (app.state === 'running') send({ type: 'pause' });
  else if (app.state === 'paused') send({ type: 'resume' });
}

// ---------------------------------------------------------------- drawing the overlay

let overlayRequested = false;
function requestOverlay() {
  if (overlayRequested) return;
  overlayRequested = true;
  requestAnimationFrame(() => { overlayRequested = false; drawOverlay(); });
}

function drawOverlay() {
  const ctx = overlayCtx;
  ctx.clearRect(0, 0, ui.overlay.width, ui.overlay.height);
  if (!app.image) return;
  const px = ui.overlay.width / ui.view.getBoundingClientRect().width || 1;  // one CSS pixel
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';

  for (const points of app.paths) drawPath(ctx, points, px, true);
  if (app.active && app.active.kind === 'path') drawPath(ctx, app.active.points, px, false);

  for (const p of app.pins) {
    const q = imageToOverlay(p);
    ctx.fillStyle = '#ff4d4d';
    ctx.strokeStyle = '#fff';
    ctx.lineWidth = 1.5 * px;
    ctx.beginPath();
    ctx.arc(q.x, q.y, 5 * px, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
  }

  const now = performance.now();
  app.releasedDrags = app.releasedDrags.filter((d) => now - d.releasedAt < FADE_MS);
  for (const drag of app.releasedDrags) {
    ctx.globalAlpha = 1 - (now - drag.releasedAt) / FADE_MS;
    drawTrail(ctx, drag.trail, px);
  }
  ctx.globalAlpha = 1;
  if (app.active && app.active.kind === 'drag') {
    drawTrail(ctx, app.active.trail, px);
    drawGrid(ctx, app.active, px);
  }
  if (app.releasedDrags.length) requestOverlay();  // keep fading
}

function polyline(ctx, points) {
  ctx.beginPath();
  points.forEach((p, i) => {
    const q = imageToOverlay(p);
    if (i === 0) ctx.moveTo(q.x, q.y); else ctx.lineTo(q.x, q.y);
  });
}

function drawTrail(ctx, trail, px) {
  ctx.strokeStyle = '#2ee66b';
  ctx.lineWidth = 2.5 * px;
  polyline(ctx, trail);
  ctx.stroke();
}

// The grid x grid block of points `spacing` image pixels apart, centred under the cursor.
function drawGrid(ctx, drag, px) {
  const c = drag.trail[drag.trail.length - 1];
  const half = (drag.grid - 1) / 2;
  ctx.fillStyle = '#2ee66b';
  ctx.strokeStyle = '#000';
  ctx.lineWidth = 1 * px;
  for (let i = 0; i < drag.grid; i++) {
    for (let j = 0; j < drag.grid; j++) {
      const q = imageToOverlay({ x: c.x + (j - half) * drag.spacing, y: c.y + (i - half) * drag.spacing });
      ctx.beginPath();
      ctx.arc(q.x, q.y, 3 * px, 0, 2 * Math.PI);
      ctx.fill();
      ctx.stroke();
    }
  }
}

function drawPath(ctx, points, px, finished) {
  if (!points.length) return;
  ctx.strokeStyle = '#4da3ff';
  ctx.fillStyle = '#4da3ff';
  ctx.lineWidth = 2.5 * px;
  ctx.setLineDash(finished ? [] : [6 * px, 4 * px]);
  polyline(ctx, points);
  ctx.stroke();
  ctx.setLineDash([]);

  const start = imageToOverlay(points[0]);
  ctx.beginPath();
  ctx.arc(start.x, start.y, 4 * px, 0, 2 * Math.PI);
  ctx.fill();
  if (finished && points.length >= 2) {
    // Arrowhead along the last segment.
    const a = imageToOverlay(points[points.length - 2]);
    const b = imageToOverlay(points[points.length - 1]);
    const angle = Math.atan2(b.y - a.y, b.x - a.x);
    const size = 9 * px;
    ctx.beginPath();
    ctx.moveTo(b.x, b.y);
    ctx.lineTo(b.x - size * Math.cos(angle - 0.45), b.y - size * Math.sin(angle - 0.45));
    ctx.lineTo(b.x - size * Math.cos(angle + 0.45), b.y - size * Math.sin(angle + 0.45));
    ctx.closePath();
    ctx.fill();
  }
}

function drawPreview() {
  previewCtx.clearRect(0, 0, ui.preview.width, ui.preview.height);
  const m = app.image;
  if (!m || !app.previewBitmap) return;
  previewCtx.drawImage(app.previewBitmap, m.offset_x, m.offset_y, m.width * m.scale_x, m.height * m.scale_y);
}

// ---------------------------------------------------------------- status

function setState(state) {
  app.state = state;
  updateButtons();
  updateStatus();
}

function updateButtons() {
  const open = Boolean(app.session);
  const streaming = app.state === 'running' || app.state === 'paused';
  ui.start.disabled = !app.imageBytes || app.state === 'connecting';
  ui.start.textContent = streaming ? 'Stop' : 'Start';
  ui.pause.disabled = !open || !streaming;
  ui.pause.textContent = app.state === 'paused' ? 'Resume' : 'Pause';
  ui.restart.disabled = !open || !streaming;
  ui.view.classList.toggle('no-image', !app.image);
  // The server has something to download once this session generated frames.
  for (const link of [ui.download, ui.downloadTracks, ui.downloadReplay]) {
    link.classList.toggle('disabled', !open || app.framesReceived === 0);
  }
  if (!app.image) ui.hint.textContent = 'Upload an image to begin';
  else if (app.lastFrameIndex < 0) {
    ui.hint.textContent = streaming ? 'waiting for the first frame...' : 'Press Start (Enter); pins and paths may be placed first';
  }
}

function updateStatus() {
  const fmt = (v, digits) => (v === null || !Number.isFinite(v) ? '-' : v.toFixed(digits));
  ui.st.state.textContent = app.state;
  ui.st.frame.textContent = app.lastFrameIndex >= 0 ? String(app.lastFrameIndex) : '-';
  ui.st.fps.textContent = fmt(app.serverFps, 1);
  ui.st.latency.textContent = fmt(app.latencyMs, 0);
  ui.st.rfps.textContent = fmt(receiveFps(), 1);
  ui.st.dropped.textContent = String(app.dropped);
}

function showError(message) {
  const time = new Date().toLocaleTimeString();
  app.errors.push(message);
  if (app.errors.length > 50) app.errors.shift();
  const line = document.createElement('div');
  line.textContent = `${time} ${message}`;
  ui.errors.append(line);
  while (ui.errors.childElementCount > MAX_ERRORS) ui.errors.firstElementChild.remove();
  console.warn('motionstream:', message);
}

function setLink(anchor, href) {
  anchor.href = href;
}

// ---------------------------------------------------------------- wiring

function isTyping(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable) return true;
  return ['INPUT', 'TEXTAREA', 'SELECT', 'A'].includes(target.tagName);
}

ui.imageInput.addEventListener('change', () => {
  const file = ui.imageInput.files && ui.imageInput.files[0];
  if (file) uploadImage(file).catch((err) => showError(`upload failed: ${err.message}`));
});
ui.prompt.addEventListener('change', () => send({ type: 'prompt', text: ui.prompt.value }));
ui.start.addEventListener('click', () => { toggleStart(); });
ui.pause.addEventListener('click', togglePause);
ui.restart.addEventListener('click', () => send({ type: 'restart' }));
ui.clear.addEventListener('click', () => { clearControlsLocally(); send({ type: 'clear' }); });
for (const [name, button] of Object.entries(ui.modes)) button.addEventListener('click', () => setMode(name));

ui.overlay.addEventListener('pointerdown', onPointerDown);
ui.overlay.addEventListener('pointermove', onPointerMove);
ui.overlay.addEventListener('pointerup', onPointerUp);
ui.overlay.addEventListener('pointercancel', onPointerUp);
ui.overlay.addEventListener('lostpointercapture', onPointerUp);
ui.overlay.addEventListener('contextmenu', (ev) => ev.preventDefault());

// Space and Enter act on the stream unless a text field (or link, select, file input) has the focus; the
// default is prevented so that a focused button is not activated a second time.
document.addEventListener('keydown', (ev) => {
  if ((ev.key !== ' ' && ev.key !== 'Enter') || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (isTyping(ev.target)) return;
  ev.preventDefault();
  if (ev.repeat) return;
  if (ev.key === ' ') togglePause(); else toggleStart();
});
document.addEventListener('keyup', (ev) => {
  if (ev.key === ' ' && !isTyping(ev.target)) ev.preventDefault();
});

new ResizeObserver(resizeOverlay).observe(ui.view);
setInterval(updateStatus, 250);
setMode('drag');
connect();
