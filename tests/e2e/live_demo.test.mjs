// End-to-end test of the live demo: `motionstream serve` + web/ in headless Chromium.
//
//   node tests/e2e/live_demo.test.mjs --server build/motionstream [--model DIR] [--artifacts DIR]
//
// Pass "model": the default backend streams more than 2 frames per second and keeps streaming through a drag.
// Pass "warp": with `--backend warp`, a drag to the right moves the image content under it to the right.
// Exit code 0 when every pass succeeds.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const FIXTURE = path.join(HERE, 'fixtures', 'chelsea.png');  // 256x170
const FACE = { x: 128, y: 95 };                               // between the cat's eyes, image pixels

const SERVER_READY_MS = 180_000;   // the server loads the model first; the machine may be slow and shared
const FIRST_FRAMES_MS = 180_000;
const MEASURE_MS = 4_000;
const MIN_FPS = 2;
const TOTAL_MS = 15 * 60_000;

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// ---------------------------------------------------------------- arguments

function parseArgs(argv) {
  const options = {
    server: null,
    model: '',
    artifacts: path.join(os.tmpdir(), 'motionstream-e2e'),
    chromium: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    passes: ['model', 'warp'],
  };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${name} needs a value`);
      return argv[++i];
    };
    if (name === '--server') options.server = value();
    else if (name === '--model') options.model = value();
    else if (name === '--artifacts') options.artifacts = value();
    else if (name === '--chromium') options.chromium = value();
    else if (name === '--pass') options.passes = value().split(',');
    else if (name === '--help' || name === '-h') usage();
    else usage(`unknown argument ${name}`);
  }
  if (!options.server) usage('--server is required');
  for (const pass of options.passes) if (!['model', 'warp'].includes(pass)) usage(`unknown pass ${pass}`);
  options.server = path.resolve(options.server);
  if (options.model) options.model = path.resolve(options.model);
  options.artifacts = path.resolve(options.artifacts);
  return options;
}

function usage(problem) {
  if (problem) console.error(`live_demo.test: ${problem}`);
  console.error('usage: node tests/e2e/live_demo.test.mjs --server BINARY [--model DIR] [--artifacts DIR]\n' +
    '                  [--chromium PATH] [--pass model,warp]');
  process.exit(2);
}

// ---------------------------------------------------------------- helpers

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class TestFailure extends Error {}
function check(condition, message) {
  if (!condition) throw new TestFailure(message);
}

const children = new Set();
process.on('exit', () => { for (const child of children) child.kill('SIGKILL'); });
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => { console.error(`live_demo.test: ${signal}`); process.exit(130); });
}

// Starts `<server> serve` and resolves with its base URL once it prints it.
function startServer(options, extraArgs, logFile) {
  const args = ['serve', '--port', '0', '--host', '127.0.0.1', ...extraArgs];
  if (options.model) args.push('--model', options.model);
  console.log(`  $ ${options.server} ${args.join(' ')}`);
  const child = spawn(options.server, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const log = fs.createWriteStream(logFile);
  const tail = [];
  const remember = (chunk) => {
    log.write(chunk);
    tail.push(...chunk.toString().split('\n').filter(Boolean));
    tail.splice(0, Math.max(0, tail.length - 30));
  };

  const ready = new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new TestFailure(
      `the server printed no http://127.0.0.1:<port>/ line within ${SERVER_READY_MS / 1000} s`)), SERVER_READY_MS);
    child.stdout.on('data', (chunk) => {
      remember(chunk);
      stdout += chunk.toString();
      const match = stdout.match(/http:\/\/127\.0\.0\.1:(\d+)\//);
      if (match) { clearTimeout(timer); resolve(`http://127.0.0.1:${match[1]}/`); }
    });
    child.stderr.on('data', remember);
    child.on('error', (err) => { clearTimeout(timer); reject(new TestFailure(`cannot start the server: ${err.message}`)); });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      tail.push(`[the server exited: code ${code}, signal ${signal}]`);
      reject(new TestFailure(`the server exited (code ${code}, signal ${signal}) before it was ready`));
    });
  });
  ready.catch(() => {});  // awaited by the pass; this only keeps an early exit from being an unhandled rejection
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      if (await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]) === false) {
        child.kill('SIGKILL');
        await exited;
      }
    }
    children.delete(child);
    log.end();
  };
  return { ready, stop, tail, child };
}

async function waitFor(page, description, predicate, arg, timeoutMs) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: timeoutMs, polling: 100 });
  } catch (err) {
    if (err.name !== 'TimeoutError') throw err;
    const snapshot = await snapshotOf(page);
    throw new TestFailure(`timed out after ${timeoutMs / 1000} s waiting for ${description}; page: ${JSON.stringify(snapshot)}`);
  }
}

const snapshotOf = (page) => page.evaluate(() => {
  const ms = window.motionstream;
  return ms && {
    session: ms.session, state: ms.state, framesReceived: ms.framesReceived, lastFrameIndex: ms.lastFrameIndex,
    errors: ms.errors,
  };
});

// Image pixels -> viewport CSS pixels on #overlay, through the upload's fit and the canvas scaling.
async function imageToPage(page, point) {
  const { image, rect, modelWidth, modelHeight } = await page.evaluate(() => {
    const r = document.getElementById('overlay').getBoundingClientRect();
    const stream = document.getElementById('stream');
    return {
      image: window.motionstream.image,
      rect: { left: r.left, top: r.top, width: r.width, height: r.height },
      modelWidth: stream.width,
      modelHeight: stream.height,
    };
  });
  const model = { x: point.x * image.scale_x + image.offset_x, y: point.y * image.scale_y + image.offset_y };
  return {
    model,
    page: {
      x: rect.left + (model.x / modelWidth) * rect.width,
      y: rect.top + (model.y / modelHeight) * rect.height,
    },
  };
}

// Pixels of the frame on #stream as grey levels, with its index.
const readStream = (page) => page.evaluate(() => {
  const canvas = document.getElementById('stream');
  const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  const grey = new Array(canvas.width * canvas.height);
  for (let i = 0; i < grey.length; i++) grey[i] = 0.299 * data[4 * i] + 0.587 * data[4 * i + 1] + 0.114 * data[4 * i + 2];
  return { width: canvas.width, height: canvas.height, grey, index: window.motionstream.lastFrameIndex,
    png: canvas.toDataURL('image/png') };
});

function savePng(dataUrl, file) {
  fs.writeFileSync(file, Buffer.from(dataUrl.slice(dataUrl.indexOf(',') + 1), 'base64'));
}

// Best offset (dx, dy) at which the (2*half)^2 patch of `from` centred at `centre` matches `to` (least mean squared
// difference), and the difference it has at offset (0, 0).
function matchPatch(from, to, centre, half, range) {
  const { width, height } = from;
  const cx = Math.round(centre.x), cy = Math.round(centre.y);
  const patchError = (dx, dy) => {
    let sum = 0;
    for (let y = cy - half; y < cy + half; y++) {
      for (let x = cx - half; x < cx + half; x++) {
        const d = from.grey[y * width + x] - to.grey[(y + dy) * width + (x + dx)];
        sum += d * d;
      }
    }
    return sum / (4 * half * half);
  };
  let best = null;
  for (let dy = range.dyMin; dy <= range.dyMax; dy++) {
    for (let dx = range.dxMin; dx <= range.dxMax; dx++) {
      if (cx - half + dx < 0 || cx + half + dx > width || cy - half + dy < 0 || cy + half + dy > height) continue;
      const error = patchError(dx, dy);
      if (!best || error < best.error) best = { dx, dy, error };
    }
  }
  return { ...best, errorAtZero: patchError(0, 0) };
}

// Opens the page, uploads the fixture, starts the stream and waits for the first frames.
async function openAndStart(page, url, checkHello) {
  await page.goto(url);
  await waitFor(page, 'the hello message', () => window.motionstream && window.motionstream.session, null, 30_000);
  const info = await page.evaluate(() => ({
    model: window.motionstream.model,
    banner: document.getElementById('banner').hidden ? '' : document.getElementById('banner').textContent,
    streamSize: [document.getElementById('stream').width, document.getElementById('stream').height],
  }));
  console.log(`  hello: ${JSON.stringify(info.model)}`);
  checkHello(info);
  check(info.streamSize[0] === info.model.width && info.streamSize[1] === info.model.height,
    `#stream is ${info.streamSize.join('x')}, the model makes ${info.model.width}x${info.model.height}`);

  await page.setInputFiles('#image-input', FIXTURE);
  await waitFor(page, 'the image message', () => window.motionstream.image !== null, null, 30_000);
  const image = await page.evaluate(() => window.motionstream.image);
  console.log(`  image: ${JSON.stringify(image)}`);
  check(image.width === 256 && image.height === 170, `the server read the upload as ${image.width}x${image.height}`);

  await page.click('#start');
  await waitFor(page, 'the first frames', () => window.motionstream.framesReceived >= 3 &&
    window.motionstream.lastFrameIndex >= 0, null, FIRST_FRAMES_MS);
  return image;
}

async function checkNoErrors(page) {
  const errors = await page.evaluate(() => window.motionstream.errors);
  check(errors.length === 0, `the page shows errors: ${JSON.stringify(errors)}`);
}

// ---------------------------------------------------------------- passes

async function passModel(page, url, options) {
  await openAndStart(page, url, (info) => {
    if (!info.model.trained) {
      check(info.banner.includes('untrained model'), `no untrained-model warning, banner: "${info.banner}"`);
    }
  });

  const rate = await page.evaluate(async (ms) => {
    const m = window.motionstream;
    const frames0 = m.framesReceived, t0 = performance.now();
    await new Promise((resolve) => setTimeout(resolve, ms));
    return { frames: m.framesReceived - frames0, seconds: (performance.now() - t0) / 1000, clientFps: m.receiveFps,
      serverFps: m.serverFps, latencyMs: m.latencyMs, dropped: m.dropped };
  }, MEASURE_MS);
  const fps = rate.frames / rate.seconds;
  console.log(`  received ${rate.frames} frames in ${rate.seconds.toFixed(2)} s = ${fps.toFixed(2)} fps ` +
    `(page's own estimate ${rate.clientFps.toFixed(2)}, server says ${rate.serverFps?.toFixed(2)} fps, ` +
    `chunk latency ${rate.latencyMs?.toFixed(0)} ms, dropped ${rate.dropped})`);
  check(fps > MIN_FPS, `receive rate ${fps.toFixed(2)} fps is not above ${MIN_FPS} fps`);

  // A drag across the overlay: ten moves over 1.5 s.
  const image = await page.evaluate(() => window.motionstream.image);
  const from = (await imageToPage(page, { x: image.width * 0.4, y: image.height * 0.5 })).page;
  const to = (await imageToPage(page, { x: image.width * 0.6, y: image.height * 0.4 })).page;
  const before = await snapshotOf(page);
  await page.mouse.move(from.x, from.y);
  await page.mouse.down();
  for (let i = 1; i <= 10; i++) {
    await sleep(150);
    await page.mouse.move(from.x + (to.x - from.x) * i / 10, from.y + (to.y - from.y) * i / 10);
  }
  const during = await snapshotOf(page);
  await page.mouse.up();
  await waitFor(page, 'frames after the drag', (n) => window.motionstream.framesReceived >= n,
    during.framesReceived + 5, 60_000);
  const after = await snapshotOf(page);
  console.log(`  drag: frames ${before.framesReceived} -> ${during.framesReceived} (while dragging) -> ` +
    `${after.framesReceived}, shown frame ${before.lastFrameIndex} -> ${after.lastFrameIndex}`);
  // Frames keep coming through and after the drag. (Not necessarily during its 1.5 s: on a loaded 2-core machine a
  // chunk can take longer than that, and frames come a chunk at a time.)
  check(after.framesReceived >= before.framesReceived + 5, 'the stream stopped during the drag');
  check(after.lastFrameIndex > during.lastFrameIndex, 'the shown frame did not advance after the drag');
  check(after.state === 'running', `state is ${after.state} after the drag`);
  await checkNoErrors(page);
  await page.screenshot({ path: path.join(options.artifacts, 'live_demo_model.png') });
  return `${fps.toFixed(2)} fps received`;
}

async function passWarp(page, url, options) {
  await openAndStart(page, url, (info) => {
    check(info.model.backend === 'warp', `hello says backend ${info.model.backend}, not warp`);
    check(info.banner.includes('warp baseline'), `no warp-baseline banner, banner: "${info.banner}"`);
  });
  const image = await page.evaluate(() => window.motionstream.image);

  const shift = 0.25 * image.width;  // image pixels
  const start = await imageToPage(page, FACE);
  const end = await imageToPage(page, { x: FACE.x + shift, y: FACE.y });
  const expectedDx = end.model.x - start.model.x;

  await sleep(500);
  const before = await readStream(page);
  savePng(before.png, path.join(options.artifacts, 'live_demo_warp_before.png'));

  // Slowly to the right (1.5 s), then hold the block there while the stream catches up.
  await page.mouse.move(start.page.x, start.page.y);
  await page.mouse.down();
  for (let i = 1; i <= 15; i++) {
    await sleep(100);
    await page.mouse.move(start.page.x + (end.page.x - start.page.x) * i / 15, start.page.y);
  }
  await sleep(2500);
  const after = await readStream(page);
  await page.screenshot({ path: path.join(options.artifacts, 'live_demo_warp.png') });
  await page.mouse.up();
  savePng(after.png, path.join(options.artifacts, 'live_demo_warp_after.png'));
  check(after.index > before.index, `the shown frame did not advance during the drag (${before.index} -> ${after.index})`);

  // Where did the content now under the released cursor come from? The patch at the drag's end in the after-frame
  // is searched for in the before-frame; its motion is the opposite of the offset found. (Searching the other way,
  // from the drag's start, finds nothing useful with a backward warp: content only spreads from the tracks' new
  // positions, so the start keeps its old pixels and matches itself at offset 0.)
  const half = 8;  // 16x16 model pixels
  const margin = 8;
  const match = matchPatch(after, before, end.model, half, {
    dxMin: -Math.ceil(1.5 * expectedDx) - margin, dxMax: margin, dyMin: -2 * margin, dyMax: 2 * margin,
  });
  const moved = { dx: -match.dx, dy: -match.dy };
  console.log(`  drag of ${expectedDx.toFixed(1)} model px to the right, (${start.model.x.toFixed(1)}, ` +
    `${start.model.y.toFixed(1)}) -> (${end.model.x.toFixed(1)}, ${end.model.y.toFixed(1)}), frames ${before.index} -> ` +
    `${after.index}: the content under the cursor moved by (${moved.dx}, ${moved.dy}) model px ` +
    `(mean squared error ${match.error.toFixed(1)}; ${match.errorAtZero.toFixed(1)} if it had not moved)`);
  check(moved.dx > 0 && moved.dx >= 0.5 * expectedDx,
    `the content moved by dx ${moved.dx}, less than half the drag's ${expectedDx.toFixed(1)} model px`);
  const maxDy = Math.max(4, 0.25 * expectedDx);
  check(Math.abs(moved.dy) <= maxDy, `the content moved by dy ${moved.dy}, more than ${maxDy.toFixed(1)} model px`);
  await checkNoErrors(page);
  return `content moved by (${moved.dx}, ${moved.dy}) model px for a ${expectedDx.toFixed(1)} px drag`;
}

const PASSES = {
  model: { extraArgs: [], run: passModel },
  warp: { extraArgs: ['--backend', 'warp'], run: passWarp },
};

// ---------------------------------------------------------------- main

async function runPass(name, browser, options) {
  const pass = PASSES[name];
  const server = startServer(options, pass.extraArgs, path.join(options.artifacts, `server_${name}.log`));
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => { if (msg.type() === 'error') console.log(`  [console] ${msg.text()}`); });
  try {
    const url = await server.ready;
    console.log(`  server ready at ${url}`);
    const summary = await pass.run(page, url, options);
    check(pageErrors.length === 0, `uncaught errors in the page: ${JSON.stringify(pageErrors)}`);
    return summary;
  } catch (err) {
    await page.screenshot({ path: path.join(options.artifacts, `live_demo_${name}_failure.png`) }).catch(() => {});
    if (server.tail.length) err.message += `\n  last server output:\n    ${server.tail.join('\n    ')}`;
    throw err;
  } finally {
    await context.close().catch(() => {});
    await server.stop();
  }
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  check(fs.existsSync(options.server), `no server binary at ${options.server}`);
  check(fs.existsSync(options.chromium), `no Chromium at ${options.chromium} (set --chromium or CHROMIUM_PATH)`);
  fs.mkdirSync(options.artifacts, { recursive: true });
  const deadline = setTimeout(() => {
    console.error(`live_demo.test: FAIL: the whole test took more than ${TOTAL_MS / 60000} minutes`);
    process.exit(1);
  }, TOTAL_MS);

  const browser = await chromium.launch({ executablePath: options.chromium, args: CHROMIUM_ARGS });
  let passed = 0, failed = 0;
  try {
    for (const name of options.passes) {
      console.log(`live_demo ${name}:`);
      const t0 = Date.now();
      try {
        const summary = await runPass(name, browser, options);
        passed++;
        console.log(`PASS live_demo ${name}: ${summary} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      } catch (err) {
        failed++;
        const message = err instanceof TestFailure ? err.message : (err.stack || String(err));
        console.log(`FAIL live_demo ${name}: ${message}`);
      }
    }
  } finally {
    await browser.close();
    clearTimeout(deadline);
  }
  console.log(`artifacts in ${options.artifacts}`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.error(`live_demo.test: FAIL: ${err instanceof TestFailure ? err.message : (err.stack || err)}`);
  process.exit(1);
});
