// arc2avatar live: the viewer's avatar follows the face in the camera, in this page (docs/live.md).
//
// Tracking: @vladmandic/face-api (its tiny face detector and 68-point landmark net, loaded from
// face-api/ beside this page after checking each file's pinned sha256), the box predicted from the
// previous frame's nose and eye points as arc2avatar.drive.track does, re-detected every
// redetect_every frames or when the landmarks disagree with it; One-Euro smoothing in face widths.
// Fitting: arc2avatar.drive.fit ported: the same model, residuals and neutral calibration, from the
// tables Python wrote into #arc2avatar-live (arc2avatar/drive/live.py); a bounded
// Levenberg–Marquardt solver stands in for scipy's trust-region reflective one.
// Nothing leaves the browser: the frames are read into a canvas and dropped.
//
// For tests and scripts: window.arc2avatarLive (ready, state, message, error, history, stats(),
// fitFrames(), trackCanvas(), frameHook, lastRecording, start(), stop(), settled(), setNeutral(),
// record()) and
// <body data-live-state>.
"use strict";

(function () {
  const live = { ready: false, state: "idle", message: "", error: null, history: [], lastRecording: null,
                 frameHook: null };
  window.arc2avatarLive = live;
  const $ = (id) => document.getElementById(id);
  const statusLine = $("live-status"), cameraButton = $("live-camera"), neutralButton = $("live-neutral");
  const recordButton = $("live-record"), downloadLink = $("live-download"), video = $("live-video");
  const overlay = $("live-overlay"), preview = $("live-preview"), statsList = $("live-stats");
  const panel = $("panel"), section = $("live"), statusOfViewer = $("status");
  if (panel && section) panel.insertBefore(section, statusOfViewer ? statusOfViewer.nextSibling : panel.firstChild);

  class LiveError extends Error {}

  function say(message, kind) {
    live.message = message;
    statusLine.textContent = message;
    statusLine.classList.toggle("error", kind === "error");
    statusLine.classList.toggle("warn", kind === "warn");
    if (kind === "error") { live.error = message; document.body.dataset.liveError = message; }
  }

  function setState(state) {
    live.state = state;
    document.body.dataset.liveState = state;
  }

  // ------------------------------------------------------------------ tables from Python
  function bytesOf(base64) {
    const binary = atob(base64);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  async function readTables() {
    const wrapped = JSON.parse($("arc2avatar-live").textContent);
    if (typeof DecompressionStream === "undefined") throw new LiveError("this browser cannot read the page's data (no DecompressionStream); use a current browser");
    const stream = new Blob([bytesOf(wrapped.gzip_b64)]).stream().pipeThrough(new DecompressionStream("gzip"));
    const tables = JSON.parse(await new Response(stream).text());
    if (tables.format !== "arc2avatar-live" || tables.format_version !== 1) {
      throw new LiveError(`this page holds live data of format ${tables.format} ${tables.format_version}; expected arc2avatar-live 1`);
    }
    return tables;
  }

  function floats(entry) {
    const bytes = bytesOf(entry.b64);
    return Float64Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
  }

  // ------------------------------------------------------------------ small linear algebra
  function rodrigues(rx, ry, rz) {  // rotation vector → 3×3 (row-major array of 9)
    const theta = Math.hypot(rx, ry, rz);
    if (theta < 1e-12) return [1, -rz, ry, rz, 1, -rx, -ry, rx, 1];
    const x = rx / theta, y = ry / theta, z = rz / theta, c = Math.cos(theta), s = Math.sin(theta), C = 1 - c;
    return [c + x * x * C, x * y * C - z * s, x * z * C + y * s,
            y * x * C + z * s, c + y * y * C, y * z * C - x * s,
            z * x * C - y * s, z * y * C + x * s, c + z * z * C];
  }

  function matmulT(A, B) {  // A · Bᵀ, 3×3 row-major
    const out = new Array(9);
    for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) out[3 * r + c] = A[3 * r] * B[3 * c] + A[3 * r + 1] * B[3 * c + 1] + A[3 * r + 2] * B[3 * c + 2];
    return out;
  }

  // yaw, pitch, roll (degrees) of R = Rz(yaw)·Rx(pitch)·Ry(roll) (arc2avatar.avatar.pose)
  function anglesOf(R) {
    const deg = 180 / Math.PI;
    const pitch = Math.asin(Math.max(-1, Math.min(1, R[7])));
    return [Math.atan2(-R[1], R[4]) * deg, pitch * deg, Math.atan2(-R[6], R[8]) * deg];
  }

  function solveLinear(A, b, n) {  // A (n×n, row-major, overwritten) x = b; partial pivoting
    const x = Float64Array.from(b);
    for (let col = 0; col < n; col++) {
      let pivot = col;
      for (let r = col + 1; r < n; r++) if (Math.abs(A[r * n + col]) > Math.abs(A[pivot * n + col])) pivot = r;
      if (Math.abs(A[pivot * n + col]) < 1e-300) return null;
      if (pivot !== col) {
        for (let c = 0; c < n; c++) { const t = A[col * n + c]; A[col * n + c] = A[pivot * n + c]; A[pivot * n + c] = t; }
        const t = x[col]; x[col] = x[pivot]; x[pivot] = t;
      }
      for (let r = col + 1; r < n; r++) {
        const f = A[r * n + col] / A[col * n + col];
        if (f === 0) continue;
        for (let c = col; c < n; c++) A[r * n + c] -= f * A[col * n + c];
        x[r] -= f * x[col];
      }
    }
    for (let r = n - 1; r >= 0; r--) {
      let s = x[r];
      for (let c = r + 1; c < n; c++) s -= A[r * n + c] * x[c];
      x[r] = s / A[r * n + r];
    }
    return x;
  }

  // Bounded Levenberg–Marquardt on f(x) (a residual vector): variables at a bound whose gradient
  // points outward are held, the step is clipped into the bounds, the damping adapts.
  function leastSquares(fun, x0, lower, upper, maxIterations) {
    const n = x0.length;
    const clip = (x) => { for (let j = 0; j < n; j++) x[j] = Math.min(upper[j], Math.max(lower[j], x[j])); return x; };
    let x = clip(Float64Array.from(x0));
    let r = fun(x), cost = dot(r, r);
    let lambda = 1e-3;
    for (let iteration = 0; iteration < maxIterations; iteration++) {
      const m = r.length, J = new Float64Array(m * n);
      for (let j = 0; j < n; j++) {
        const h = 1e-6 * Math.max(1, Math.abs(x[j]));
        const saved = x[j];
        x[j] = saved + h;
        const rj = fun(x);
        x[j] = saved;
        for (let i = 0; i < m; i++) J[i * n + j] = (rj[i] - r[i]) / h;
      }
      const A = new Float64Array(n * n), g = new Float64Array(n);
      for (let i = 0; i < m; i++) {
        const row = i * n, ri = r[i];
        for (let a = 0; a < n; a++) {
          const ja = J[row + a];
          if (ja === 0) continue;
          g[a] += ja * ri;
          for (let b = a; b < n; b++) A[a * n + b] += ja * J[row + b];
        }
      }
      for (let a = 0; a < n; a++) for (let b = 0; b < a; b++) A[a * n + b] = A[b * n + a];
      const free = [];
      for (let j = 0; j < n; j++) {
        const atLower = x[j] <= lower[j] + 1e-12 && g[j] > 0, atUpper = x[j] >= upper[j] - 1e-12 && g[j] < 0;
        if (!atLower && !atUpper) free.push(j);
      }
      if (free.length === 0) break;
      let gradient = 0;
      for (const j of free) gradient = Math.max(gradient, Math.abs(g[j]));
      if (gradient < 1e-12) break;
      let improved = false, stepNorm = 0;
      for (let attempt = 0; attempt < 12; attempt++) {
        const f = free.length, M = new Float64Array(f * f), rhs = new Float64Array(f);
        free.forEach((a, p) => {
          rhs[p] = -g[a];
          free.forEach((b, q) => { M[p * f + q] = A[a * n + b]; });
          M[p * f + p] += lambda * Math.max(A[a * n + a], 1e-12);
        });
        const step = solveLinear(M, rhs, f);
        if (!step) { lambda *= 10; continue; }
        const candidate = Float64Array.from(x);
        free.forEach((a, p) => { candidate[a] += step[p]; });
        clip(candidate);
        const rc = fun(candidate), costC = dot(rc, rc);
        if (costC < cost) {
          stepNorm = 0;
          for (let j = 0; j < n; j++) stepNorm = Math.max(stepNorm, Math.abs(candidate[j] - x[j]));
          const relative = (cost - costC) / Math.max(cost, 1e-300);
          x = candidate; r = rc; cost = costC; lambda = Math.max(lambda / 3, 1e-9);
          improved = true;
          if (relative < 1e-12 || stepNorm < 1e-10) return x;
          break;
        }
        lambda *= 4;
      }
      if (!improved) break;
    }
    return x;
  }

  function dot(a, b) { let s = 0; for (let i = 0; i < a.length; i++) s += a[i] * b[i]; return s; }

  // ------------------------------------------------------------------ the fit (arc2avatar.drive.fit)
  class Fitter {
    constructor(T) {
      this.T = T;
      this.K = T.names.length;
      this.points = floats(T.points);
      this.basis0 = floats(T.basis);
      this.basis = Float64Array.from(this.basis0);
      this.offsets = new Float64Array(68 * 3);
      this.surface = floats(T.surface);
      this.surfaceBasis = floats(T.surface_basis);
      this.sqrtW = T.landmark_weights.map(Math.sqrt);
      this.used = T.used;
      const cam = T.camera;
      this.VR = [].concat(...cam.view_rotation);
      this.Vt = cam.view_translation;
      this.previous = null;
      this.neutral = null;
      this.setSize(640, 480);
      this.lower = Float64Array.from([-Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity, ...T.fit.lower]);
      this.upper = Float64Array.from([Infinity, Infinity, Infinity, Infinity, Infinity, Infinity, ...T.fit.upper]);
      this.keep = new Set(T.keep_vertex);
      this.pixels = new Float64Array(68 * 2);
      this.depths = new Float64Array(68);
    }

    setSize(width, height) {
      const cam = this.T.camera;
      this.focal = cam.focal_per_height * height;
      this.cx = cam.centre_per_size[0] * width + cam.pixel_offset;
      this.cy = cam.centre_per_size[1] * height + cam.pixel_offset;
    }

    interocular(lm) {
      const mean = (idx) => { let x = 0, y = 0; for (const i of idx) { x += lm[2 * i]; y += lm[2 * i + 1]; } return [x / idx.length, y / idx.length]; };
      const a = mean(this.T.eye_left), b = mean(this.T.eye_right);
      return Math.max(Math.hypot(a[0] - b[0], a[1] - b[1]), 1);
    }

    // world points (N×3 flat) → this.pixels/this.depths-like arrays
    projectWorld(world, count, pixels, depths) {
      const V = this.VR, t = this.Vt;
      for (let i = 0; i < count; i++) {
        const x = world[3 * i], y = world[3 * i + 1], z = world[3 * i + 2];
        const c0 = V[0] * x + V[1] * y + V[2] * z + t[0];
        const c1 = V[3] * x + V[4] * y + V[5] * z + t[1];
        const c2 = V[6] * x + V[7] * y + V[8] * z + t[2];
        pixels[2 * i] = this.focal * c0 / c2 + this.cx;
        pixels[2 * i + 1] = this.focal * c1 / c2 + this.cy;
        depths[i] = c2;
      }
    }

    // landmarks of parameters x (rotvec 3, tx, tz, log s, weights K) → this.pixels, this.depths
    project(x, weights) {
      const K = this.K, R = rodrigues(x[0], x[1], x[2]), s = Math.exp(x[5]);
      const w = weights || x.subarray(6);
      const world = new Float64Array(68 * 3);
      for (let i = 0; i < 68; i++) {
        const X = [0, 0, 0];
        for (let c = 0; c < 3; c++) {
          let v = this.points[3 * i + c] + this.offsets[3 * i + c];
          const row = (3 * i + c) * K;
          for (let k = 0; k < K; k++) v += this.basis[row + k] * w[k];
          X[c] = v;
        }
        world[3 * i] = s * (R[0] * X[0] + R[1] * X[1] + R[2] * X[2]) + x[3];
        world[3 * i + 1] = s * (R[3] * X[0] + R[4] * X[1] + R[5] * X[2]);
        world[3 * i + 2] = s * (R[6] * X[0] + R[7] * X[1] + R[8] * X[2]) + x[4];
      }
      this.projectWorld(world, 68, this.pixels, this.depths);
      return this.pixels;
    }

    initial(lm) {
      const x = new Float64Array(6 + this.K);
      const spread = (p) => {
        let sum = 0;
        for (let c = 0; c < 2; c++) {
          let lo = Infinity, hi = -Infinity;
          for (let i = 0; i < 68; i++) if (this.used[i]) { lo = Math.min(lo, p[2 * i + c]); hi = Math.max(hi, p[2 * i + c]); }
          sum += hi - lo;
        }
        return sum / 2;
      };
      const centre = (p) => {
        let x0 = 0, y0 = 0, n = 0;
        for (let i = 0; i < 68; i++) if (this.used[i]) { x0 += p[2 * i]; y0 += p[2 * i + 1]; n++; }
        return [x0 / n, y0 / n];
      };
      const projected = Float64Array.from(this.project(x));
      x[5] = Math.log(spread(lm) / Math.max(spread(projected), 1e-6));
      const a = centre(lm), b = centre(this.project(x));
      x[3] = -(a[0] - b[0]) * this.T.camera.radius / this.focal;
      x[4] = -(a[1] - b[1]) * this.T.camera.radius / this.focal;
      return x;
    }

    solve(lm, x0, fitExpression) {
      const K = this.K, unit = this.interocular(lm), sqrtW = this.sqrtW, fit = this.T.fit;
      const previousW = this.previous ? this.previous.weights : new Float64Array(K);
      if (fitExpression) {
        const neutral = this.neutral;
        const fun = (x) => {
          const p = this.project(x), r = new Float64Array(136 + 2 * K + 1);
          for (let i = 0; i < 136; i++) r[i] = (p[i] - lm[i]) / unit * sqrtW[i >> 1];
          for (let k = 0; k < K; k++) { r[136 + k] = fit.expression_prior * x[6 + k]; r[136 + K + k] = fit.smoothness * (x[6 + k] - previousW[k]); }
          // the head's vertical shift from the neutral frame's (FitConfig.vertical_shift_prior: a nod reads as a nod)
          if (neutral) r[136 + 2 * K] = fit.vertical_shift_prior * (x[4] - neutral.t[2]) / neutral.scale;
          return r;
        };
        const start = Float64Array.from(x0);
        for (let k = 0; k < K; k++) start[6 + k] = Math.min(fit.upper[k] - 1e-9, Math.max(fit.lower[k] + 1e-9, start[6 + k]));
        return leastSquares(fun, start, this.lower, this.upper, fit.max_iterations);
      }
      const zeros = new Float64Array(K);
      const fun = (p6) => {
        const x = new Float64Array(6 + K); x.set(p6);
        const p = this.project(x, zeros), r = new Float64Array(136);
        for (let i = 0; i < 136; i++) r[i] = (p[i] - lm[i]) / unit * sqrtW[i >> 1];
        return r;
      };
      const inf = new Float64Array(6).fill(Infinity);
      const p = leastSquares(fun, x0.subarray(0, 6), inf.map((v) => -v), inf, 4 * fit.max_iterations);
      const x = new Float64Array(6 + K); x.set(p);
      return x;
    }

    poseOf(x, lm) {
      const p = this.project(x), unit = this.interocular(lm);
      let sum = 0, n = 0;
      for (let i = 0; i < 68; i++) if (this.used[i]) { sum += ((p[2 * i] - lm[2 * i]) ** 2 + (p[2 * i + 1] - lm[2 * i + 1]) ** 2) / unit ** 2; n++; }
      return { x: Float64Array.from(x), R: rodrigues(x[0], x[1], x[2]), t: [x[3], 0, x[4]], scale: Math.exp(x[5]),
               weights: Float64Array.from(x.subarray(6)), rms: Math.sqrt(sum / n) };
    }

    followSurface(lm, R, s, t) {
      const fit = this.T.fit, K = this.K, V = this.surface.length / 3;
      if (V === 0) return;
      const world = new Float64Array(V * 3);
      for (let v = 0; v < V; v++) {
        const X = this.surface.subarray(3 * v, 3 * v + 3);
        for (let r = 0; r < 3; r++) world[3 * v + r] = s * (R[3 * r] * X[0] + R[3 * r + 1] * X[1] + R[3 * r + 2] * X[2]) + t[r];
      }
      const pixels = new Float64Array(V * 2), depth = new Float64Array(V);
      this.projectWorld(world, V, pixels, depth);
      const basis = Float64Array.from(this.basis0);
      const n = fit.surface_neighbours, distance = new Float64Array(V), order = new Int32Array(V);
      for (let i = 0; i < 68; i++) {
        if (this.keep.has(i)) continue;
        for (let v = 0; v < V; v++) { distance[v] = Math.hypot(pixels[2 * v] - lm[2 * i], pixels[2 * v + 1] - lm[2 * i + 1]); order[v] = v; }
        const nearest = Array.from(order).sort((a, b) => distance[a] - distance[b]).slice(0, n * 3);
        let front = Infinity;
        for (const v of nearest) front = Math.min(front, depth[v]);
        const chosen = nearest.filter((v) => depth[v] <= front + fit.surface_depth_band * s).slice(0, n);
        let total = 0;
        const weight = chosen.map((v) => { const w = 1 / (distance[v] + 1e-3); total += w; return w; });
        for (let c = 0; c < 3; c++) for (let k = 0; k < K; k++) {
          let value = 0;
          chosen.forEach((v, q) => { value += weight[q] / total * this.surfaceBasis[(3 * v + c) * K + k]; });
          basis[(3 * i + c) * K + k] = value;
        }
      }
      this.basis = basis;
    }

    setNeutral(lm) {
      this.offsets = new Float64Array(68 * 3);
      this.basis = Float64Array.from(this.basis0);
      this.previous = null;
      let x = this.initial(lm), R = null, s = 1, t = [0, 0, 0];
      const V = this.VR;
      for (let iteration = 0; iteration < this.T.fit.neutral_iterations; iteration++) {
        x = this.solve(lm, x, false);
        R = rodrigues(x[0], x[1], x[2]); s = Math.exp(x[5]); t = [x[3], 0, x[4]];
        const p = this.project(x, new Float64Array(this.K));
        for (let i = 0; i < 68; i++) {
          const d = this.depths[i];
          const cam = [(lm[2 * i] - p[2 * i]) * d / this.focal, (lm[2 * i + 1] - p[2 * i + 1]) * d / this.focal, 0];
          const w = [0, 1, 2].map((c) => cam[0] * V[c] + cam[1] * V[3 + c] + cam[2] * V[6 + c]);  // camera → world
          for (let c = 0; c < 3; c++) this.offsets[3 * i + c] += (w[0] * R[c] + w[1] * R[3 + c] + w[2] * R[6 + c]) / s;
        }
      }
      this.followSurface(lm, R, s, t);
      this.neutral = this.poseOf(x, lm);
      this.previous = this.neutral;
      return this.neutral;
    }

    fit(lm) {
      let x0;
      if (!this.previous) x0 = this.solve(lm, this.initial(lm), false);
      else x0 = this.previous.x;
      const pose = this.poseOf(this.solve(lm, x0, true), lm);
      this.previous = pose;
      return pose;
    }

    // merged weights (the smaller of each pair of halves) and the pose relative to the neutral frame
    outputs(pose) {
      const T = this.T, out = {};
      const merged = new Set();
      for (const [name, right, left] of T.halves) { out[name] = Math.min(pose.weights[right], pose.weights[left]); merged.add(right); merged.add(left); }
      T.names.forEach((name, k) => { if (!merged.has(k)) out[name] = pose.weights[k]; });
      const weights = {};
      for (const name of T.outputs) weights[name] = out[name];
      const n = this.neutral, rel = matmulT(pose.R, n.R);
      const [yaw, pitch, roll] = anglesOf(rel);
      const tr = [0, 1, 2].map((c) => (pose.t[c] - n.t[c]) / n.scale);
      return { weights, headPose: [yaw, pitch, roll, tr[0], tr[1], tr[2], pose.scale / n.scale], rotation: rel };
    }
  }

  // ------------------------------------------------------------------ One-Euro filter (drive.track.OneEuroFilter)
  class OneEuro {
    constructor(track) { this.p = track; this.value = null; this.speed = null; this.time = null; }
    reset() { this.value = this.speed = this.time = null; }
    alpha(cutoff, rate) { const tau = 1 / (2 * Math.PI * cutoff); return 1 / (1 + tau * rate); }
    filter(sample, time) {
      if (this.value === null || !(time > this.time)) {
        if (this.value === null) { this.value = Float64Array.from(sample); this.speed = new Float64Array(sample.length); }
        this.time = time;
        return Float64Array.from(this.value);
      }
      const rate = 1 / (time - this.time), p = this.p;
      this.time = time;
      const aD = this.alpha(p.d_cutoff_hz, rate);
      for (let i = 0; i < sample.length; i++) {
        const raw = (sample[i] - this.value[i]) * rate;
        this.speed[i] = aD * raw + (1 - aD) * this.speed[i];
        const a = this.alpha(p.min_cutoff_hz + p.beta * Math.abs(this.speed[i]), rate);
        this.value[i] = a * sample[i] + (1 - a) * this.value[i];
      }
      return Float64Array.from(this.value);
    }
  }

  // ------------------------------------------------------------------ tracker (face-api)
  async function sha256Hex(buffer) {
    const digest = await crypto.subtle.digest("SHA-256", buffer);
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function loadAsset(T, name) {
    const url = `${T.assets.folder}/${name}`;
    let response;
    try {
      response = await fetch(url, { cache: "no-cache" });
    } catch (error) {
      throw new LiveError(`the face tracker's file ${url} could not be read (${error.message}); ${T.assets.how_to_get}, then write this page again with \`arc2avatar viewer OUT --webcam\``);
    }
    if (!response.ok) {
      throw new LiveError(`the face tracker's file ${url} is missing (HTTP ${response.status}); ${T.assets.how_to_get}, then write this page again with \`arc2avatar viewer OUT --webcam\``);
    }
    const buffer = await response.arrayBuffer();
    const hash = await sha256Hex(buffer);
    if (hash !== T.assets.files[name]) {
      throw new LiveError(`${url} does not match the sha256 pinned for ${T.assets.package} (${hash.slice(0, 12)}… instead of ${T.assets.files[name].slice(0, 12)}…): modified or from another version, so it was not run; write the page again with \`arc2avatar viewer OUT --webcam\``);
    }
    return buffer;
  }

  async function loadTracker(T) {
    const files = {};
    for (const name of Object.keys(T.assets.files)) files[name] = await loadAsset(T, name);  // all checked before any runs
    if (!window.faceapi) {
      const script = document.createElement("script");
      script.textContent = new TextDecoder().decode(files["face-api.js"]);
      document.head.appendChild(script);
    }
    const faceapi = window.faceapi;
    if (!faceapi) throw new LiveError("face-api.js did not start in this browser");
    let backend = T.track.backend;
    if (backend === "wasm") {
      // the checked .wasm bytes, not the server's copy, are what runs: each is handed over as a blob URL
      const paths = {};
      for (const name of Object.keys(files)) {
        if (name.endsWith(".wasm")) paths[name] = URL.createObjectURL(new Blob([files[name]], { type: "application/wasm" }));
      }
      faceapi.tf.setWasmPaths(paths);
      if (!(await faceapi.tf.setBackend("wasm").catch(() => false))) backend = "webgl";  // no WebAssembly here
    }
    if (backend !== "wasm" && !(await faceapi.tf.setBackend(backend))) throw new LiveError(`TensorFlow.js's ${backend} backend does not start in this browser`);
    await faceapi.tf.ready();
    live.backend = faceapi.tf.getBackend();
    const net = async (model, manifestName, binName) => {
      const manifest = JSON.parse(new TextDecoder().decode(files[manifestName]));
      const map = faceapi.tf.io.decodeWeights(files[binName], manifest[0].weights);
      model.loadFromWeightMap(map);
    };
    await net(faceapi.nets.tinyFaceDetector, "tiny_face_detector_model-weights_manifest.json", "tiny_face_detector_model.bin");
    await net(faceapi.nets.faceLandmark68Net, "face_landmark_68_model-weights_manifest.json", "face_landmark_68_model.bin");
    // Warm up: the first run of each net compiles its WebGL programs (seconds in software WebGL);
    // done now, the camera's first second (the rest face) is tracked in time.
    const blank = document.createElement("canvas");
    blank.width = blank.height = T.track.landmark_crop_px;
    blank.getContext("2d").fillRect(0, 0, blank.width, blank.height);
    await faceapi.detectSingleFace(blank, new faceapi.TinyFaceDetectorOptions({ inputSize: T.track.detector_input_px, scoreThreshold: T.track.detector_score }));
    await faceapi.nets.faceLandmark68Net.detectLandmarks(blank);
    return faceapi;
  }

  function boxOfLandmarks(lm) {
    let x1 = Infinity, y1 = Infinity, x2 = -Infinity, y2 = -Infinity;
    for (let i = 0; i < 68; i++) { x1 = Math.min(x1, lm[2 * i]); x2 = Math.max(x2, lm[2 * i]); y1 = Math.min(y1, lm[2 * i + 1]); y2 = Math.max(y2, lm[2 * i + 1]); }
    return [x1, y1, x2, y2];
  }

  function iou(a, b) {
    const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0])), h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
    const inter = w * h, union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    return union > 0 ? inter / union : 0;
  }

  class Tracker {
    constructor(faceapi, T) {
      this.faceapi = faceapi; this.T = T; this.track = T.track;
      this.options = new faceapi.TinyFaceDetectorOptions({ inputSize: T.track.detector_input_px, scoreThreshold: T.track.detector_score });
      this.crop = document.createElement("canvas");
      this.crop.width = this.crop.height = T.track.landmark_crop_px;
      this.cropContext = this.crop.getContext("2d", { willReadFrequently: true });
      this.mirror = document.createElement("canvas");
      this.mirror.width = this.mirror.height = T.track.landmark_crop_px;
      this.mirrorContext = this.mirror.getContext("2d", { willReadFrequently: true });
      this.filter = new OneEuro(T.track);
      this.tracked = 0; this.registered = 0; this.lastChange = 0;  // frames tracked from a predicted box, of them registered
      this.reset();
    }

    reset() { this.previous = null; this.boxShape = null; this.sinceDetect = 0; this.unit = 1; this.filter.reset(); }

    // how far box b sits from box a: the largest of the centres' shifts and the sides' difference,
    // in a's side
    static boxChange(a, b) {
      const side = Math.max(a[2] - a[0], a[3] - a[1], 1);
      return Math.max(Math.abs((b[0] + b[2]) - (a[0] + a[2])) / 2, Math.abs((b[1] + b[3]) - (a[1] + a[3])) / 2,
                      Math.abs(Math.max(b[2] - b[0], b[3] - b[1]) - side)) / side;
    }

    stableFrame(lm) {  // centre and RMS spread of the nose and eye points (drive.track.stable_frame)
      const idx = this.T.box_landmarks;
      let x = 0, y = 0;
      for (const i of idx) { x += lm[2 * i]; y += lm[2 * i + 1]; }
      x /= idx.length; y /= idx.length;
      let s = 0;
      for (const i of idx) s += (lm[2 * i] - x) ** 2 + (lm[2 * i + 1] - y) ** 2;
      return [x, y, Math.max(Math.sqrt(s / idx.length), 1)];
    }

    boxFrom(lm) {
      if (!this.boxShape) return boxOfLandmarks(lm);
      const [x, y, u] = this.stableFrame(lm), r = this.boxShape;
      return [x + r[0] * u, y + r[1] * u, x + r[2] * u, y + r[3] * u];
    }

    async landmarksIn(canvas, box) {  // (68·2) pixel indices of the face in box
      // a square around the box, enlarged and moved down so that an opening jaw stays inside it
      const side = this.track.crop_scale * Math.max(box[2] - box[0], box[3] - box[1], 1);
      const cx = (box[0] + box[2]) / 2, cy = (box[1] + box[3]) / 2 + this.track.crop_shift * side;
      const x0 = cx - side / 2, y0 = cy - side / 2;
      const C = this.crop.width;
      this.cropContext.fillStyle = "#000";
      this.cropContext.fillRect(0, 0, C, C);
      this.cropContext.drawImage(canvas, x0, y0, side, side, 0, 0, C, C);
      const net = this.faceapi.nets.faceLandmark68Net;
      let result, mirrored = null;
      if (this.track.mirror_average) {  // the mirrored crop too, in the same batch as the crop (one call)
        this.mirrorContext.setTransform(-1, 0, 0, 1, C, 0);
        this.mirrorContext.drawImage(this.crop, 0, 0);
        [result, mirrored] = await net.detectLandmarks([this.crop, this.mirror]);
      } else {
        result = await net.detectLandmarks(this.crop);
      }
      const positions = result.positions.map((p) => [p.x, p.y]);
      if (mirrored) {  // its points flipped back and renumbered
        mirrored = mirrored.positions;
        const partner = this.T.mirror_partner;
        for (let i = 0; i < 68; i++) {
          const q = mirrored[partner[i]];
          positions[i] = [(positions[i][0] + C - q.x) / 2, (positions[i][1] + q.y) / 2];
        }
      }
      const lm = new Float64Array(136), offset = this.T.camera.pixel_offset;
      for (let i = 0; i < 68; i++) {
        lm[2 * i] = x0 + positions[i][0] * side / C + offset;
        lm[2 * i + 1] = y0 + positions[i][1] * side / C + offset;
      }
      return lm;
    }

    async detect(canvas) {
      const found = await this.faceapi.detectSingleFace(canvas, this.options);
      if (!found) return null;
      const b = found.box;
      return [b.x, b.y, b.x + b.width, b.y + b.height];
    }

    // (68·2) smoothed landmarks of a frame, or null without a face
    async next(canvas, time) {
      let lm = null;
      this.lastChange = null;
      const W = canvas.width, H = canvas.height;
      if (this.previous && this.sinceDetect < this.track.redetect_every) {
        const box = this.boxFrom(this.previous);
        if (box[0] >= 0 && box[1] >= 0 && box[2] < W && box[3] < H) {
          let found = await this.landmarksIn(canvas, box);
          const own = this.boxFrom(found);
          if (iou(own, box) >= this.track.min_track_iou) {
            // The crop registered to this frame's face: the net's points move with where the face
            // is cut out, and the box predicted from the last tracked frame sits differently the
            // more the head moved since (frames dropped). Where the box this frame's own points
            // give is further than register_tolerance from the crop used, the net runs again on it.
            const change = Tracker.boxChange(box, own);
            this.lastChange = change;
            if (change > this.track.register_tolerance) {
              const registered = await this.landmarksIn(canvas, own);
              if (iou(this.boxFrom(registered), own) >= this.track.min_track_iou) { found = registered; this.registered += 1; }
            }
            this.tracked += 1;
            lm = found;
          }
        }
      }
      if (!lm) {
        this.sinceDetect = 0;
        const box = await this.detect(canvas);
        if (!box) { this.reset(); return null; }
        lm = await this.landmarksIn(canvas, box);
        const [x, y, u] = this.stableFrame(lm);
        this.boxShape = [(box[0] - x) / u, (box[1] - y) / u, (box[2] - x) / u, (box[3] - y) / u];
      }
      this.sinceDetect += 1;
      this.previous = lm;
      if (this.filter.value === null) {
        let lo = Infinity, hi = -Infinity;
        for (let i = 0; i < 68; i++) { lo = Math.min(lo, lm[2 * i]); hi = Math.max(hi, lm[2 * i]); }
        this.unit = Math.max(hi - lo, 1);
      }
      const scaled = lm.map((v) => v / this.unit);
      return this.filter.filter(scaled, time).map((v) => v * this.unit);
    }
  }

  // ------------------------------------------------------------------ recording
  function resampleRecording(records, fps, names) {
    const t0 = records[0].t, duration = records[records.length - 1].t - t0;
    const count = Math.max(1, Math.floor(duration * fps + 1e-9) + 1);
    const frames = [], poses = [];
    let j = 0;
    const fields = ["yaw_deg", "pitch_deg", "roll_deg", "tx", "ty", "tz", "scale"];
    const round = (v) => Math.round(v * 1e6) / 1e6;
    for (let f = 0; f < count; f++) {
      const t = t0 + f / fps;
      while (j < records.length - 2 && records[j + 1].t < t) j++;
      const a = records[j], b = records[Math.min(j + 1, records.length - 1)];
      const u = b.t > a.t ? Math.min(1, Math.max(0, (t - a.t) / (b.t - a.t))) : 0;
      const frame = {};
      for (const name of names) frame[name] = round(a.weights[name] + u * (b.weights[name] - a.weights[name]));
      frames.push(frame);
      const pose = {};
      fields.forEach((field, c) => { pose[field] = round(a.headPose[c] + u * (b.headPose[c] - a.headPose[c])); });
      poses.push(pose);
    }
    return { fps, frames, head_pose: poses,
             capture: { times_s: records.map((r) => round(r.t - t0)), frames: records.length, names,
                        source: "arc2avatar live page", weights: records.map((r) => names.map((n) => round(r.weights[n]))),
                        head_pose: records.map((r) => r.headPose.map(round)) } };
  }

  // ------------------------------------------------------------------ the page
  async function main() {
    setState("idle");
    const T = await readTables();
    const fitter = new Fitter(T);
    live.tables = T;
    // For tests and scripts: fit landmark arrays (each 68×2 pixel indices) of a width × height
    // frame, the first as the neutral, exactly as the camera's frames are fitted.
    live.fitFrames = (neutral, frames, width, height) => {
      const f = new Fitter(T);
      f.setSize(width, height);
      f.setNeutral(Float64Array.from(neutral.flat()));
      return frames.map((lm) => { const pose = f.fit(Float64Array.from(lm.flat())); const o = f.outputs(pose); return { weights: o.weights, head_pose: o.headPose, raw: Array.from(pose.weights) }; });
    };
    live.ready = true;
    document.body.dataset.liveReady = "true";

    if (location.protocol === "file:") {
      say("This page was opened from a file, where the browser blocks the camera and the tracker's files: serve its folder (for example `python -m http.server` in it) and open http://localhost:8000/viewer.html.", "error");
      setState("blocked");
      cameraButton.disabled = true;
      return;
    }
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !crypto.subtle) {
      say("The camera needs a secure page: open it from https:// or from http://localhost (this address is neither), in a current browser.", "error");
      setState("blocked");
      cameraButton.disabled = true;
      return;
    }

    let tracker = null, stream = null, running = false, neutralSamples = null, neutralStart = null, noFace = 0;
    // the viewer's frame count and the time when weights were last handed to it, when that redraw
    // was seen shown, how long it took
    let drawnAt = null, handedAt = 0, presentedAt = null, redrawMs = 0;
    let recording = null;
    const timings = { frames: [], latency: [], track: [], fit: [], wait: [], read: [], net: [], overlay: [] };
    const frameCanvas = document.createElement("canvas");
    const frameContext = frameCanvas.getContext("2d", { willReadFrequently: true });
    const viewer = () => window.arc2avatarViewer;

    function showStats() {
      const s = live.stats();
      statsList.replaceChildren();
      for (const [key, value] of Object.entries({ "frames/s": s.fps.toFixed(1), "latency (median)": `${s.latency_ms.toFixed(0)} ms`,
                                                  "tracking": `${s.track_ms.toFixed(0)} ms`, "fitting": `${s.fit_ms.toFixed(1)} ms` })) {
        const dt = document.createElement("dt"), dd = document.createElement("dd");
        dt.textContent = key; dd.textContent = value;
        statsList.append(dt, dd);
      }
    }

    const median = (values) => { if (!values.length) return NaN; const s = [...values].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
    live.stats = () => {
      const f = timings.frames, span = f.length > 1 ? (f[f.length - 1] - f[0]) / 1000 : 0;
      return { fps: span > 0 ? (f.length - 1) / span : 0, latency_ms: median(timings.latency), track_ms: median(timings.track),
               fit_ms: median(timings.fit), wait_ms: median(timings.wait), read_ms: median(timings.read),
               net_ms: median(timings.net), overlay_ms: median(timings.overlay), frames: live.history.length,
               backend: live.backend, source: live.frameSource,
               registered: tracker ? tracker.registered : 0, tracked: tracker ? tracker.tracked : 0 };
    };

    function drawOverlay(lm) {
      const ctx = overlay.getContext("2d");
      overlay.width = frameCanvas.width; overlay.height = frameCanvas.height;
      ctx.clearRect(0, 0, overlay.width, overlay.height);
      if (!lm) return;
      ctx.fillStyle = "#39ff14";
      for (let i = 0; i < 68; i++) ctx.fillRect(lm[2 * i] - 1, lm[2 * i + 1] - 1, 3, 3);
    }

    function beginNeutral() {
      neutralSamples = []; neutralStart = null;
      say(`Look at the camera with a relaxed face: reading your rest face (${T.track.neutral_seconds} s)…`);
    }

    // the frame being tracked (a promise): ``settled()`` waits for it after ``stop()``
    let inFlight = Promise.resolve();
    const handle = (metadata, source) => (inFlight = processFrame(metadata, source));
    live.settled = () => inFlight.catch(() => {});

    async function processFrame(metadata, source) {
      const started = performance.now();
      const width = source ? source.displayWidth : video.videoWidth, height = source ? source.displayHeight : video.videoHeight;
      if (!width || !height) return;
      if (frameCanvas.width !== width || frameCanvas.height !== height) { frameCanvas.width = width; frameCanvas.height = height; fitter.setSize(width, height); }
      frameContext.drawImage(source || video, 0, 0, width, height);
      const tag = live.frameHook ? live.frameHook(frameCanvas) : undefined;
      // seconds: the frame's own time stamp where the frame reader gives one (the camera's clock),
      // else when the camera captured it on the page's clock, else when it arrived. Not the arrival
      // when there is a time stamp: after a slow redraw frames arrive bunched, and the One-Euro
      // filter, reading a few milliseconds between frames a camera period or more apart, holds the
      // points back. Closed loop, one run each, the live pass's points against the same camera
      // frame tracked in order (the paced pass), 73 px between the eyes: largest point difference
      // median 6.3 → 4.6 px (90th percentile 21 → 12.5), mouth corners 2.5 → 2.0 px (5.4 → 4.5)
      const time = metadata && Number.isFinite(metadata.frameTime) ? metadata.frameTime
        : (metadata && metadata.captureTime ? metadata.captureTime : (metadata && metadata.expectedDisplayTime) || started) / 1000;
      const read = performance.now();
      const lm = await tracker.next(frameCanvas, time);
      const tracked = performance.now();
      drawOverlay(lm);
      timings.read.push(read - started); timings.net.push(tracked - read); timings.overlay.push(performance.now() - tracked);
      if (!lm) {
        noFace += 1;
        if (noFace >= T.track.no_face_frames) { say("No face in view: face the camera, in good light.", "warn"); setState("no-face"); }
        return;
      }
      if (noFace >= T.track.no_face_frames && neutralSamples === null) say("Following your face.");
      noFace = 0;
      if (neutralSamples !== null) {
        if (neutralStart === null) neutralStart = time;
        neutralSamples.push(lm);
        if (time - neutralStart >= T.track.neutral_seconds) {
          const mean = new Float64Array(136);
          for (const s of neutralSamples) for (let i = 0; i < 136; i++) mean[i] += s[i] / neutralSamples.length;
          fitter.setNeutral(mean);
          neutralSamples = null;
          neutralButton.disabled = false; recordButton.disabled = false;
          say("Following your face. Record saves the performance for animate --sequence.");
        }
        setState(neutralSamples === null ? "live" : "neutral");
        return;
      }
      setState("live");
      const pose = fitter.fit(lm);
      const out = fitter.outputs(pose);
      const fitted = performance.now();
      // To the avatar, unless its previous redraw is not shown yet (then this frame's weights are
      // superseded by the next one's): a slow renderer (software WebGL) does not hold up tracking.
      const v = viewer();
      let shown = false;
      const now = performance.now();
      if (v && drawnAt !== null && v.frame !== drawnAt && presentedAt === null) {
        presentedAt = now; redrawMs = now - handedAt;  // the previous redraw was shown (noticed now)
      }
      // a slow renderer (a redraw slower than slow_redraw_ms: software WebGL) is given at most
      // redraw_share of the time: after a redraw of D ms, the next waits D·(1/share − 1)
      const slow = redrawMs > T.track.slow_redraw_ms;
      const rested = !slow || now - presentedAt >= redrawMs * (1 / T.track.redraw_share - 1);
      if (v && v.setWeights && (drawnAt === null || presentedAt !== null) && rested) {
        v.setWeights(Object.fromEntries(Object.entries(out.weights).filter(([name]) => v.state().weights[name] !== undefined)));
        const R = out.rotation, s = out.headPose[6];
        v.setHeadPose([[s * R[0], s * R[1], s * R[2]], [s * R[3], s * R[4], s * R[5]], [s * R[6], s * R[7], s * R[8]]], out.headPose.slice(3, 6));
        drawnAt = v.frame; handedAt = performance.now(); presentedAt = null;
        shown = true;
      }
      const applied = performance.now();
      const capture = metadata && metadata.captureTime ? metadata.captureTime : started;
      timings.frames.push(applied);
      if (shown) timings.latency.push(applied - capture);
      timings.track.push(tracked - started); timings.fit.push(fitted - tracked);
      for (const list of Object.values(timings)) if (list.length > 120) list.shift();
      const entry = { t: time, weights: out.weights, headPose: out.headPose, tag, rms: pose.rms, landmarks: Array.from(lm),
                      cropChange: tracker.lastChange,
                      media: metadata ? [metadata.mediaTime, metadata.captureTime, metadata.presentedFrames] : null };
      live.history.push(entry);
      if (live.history.length > 20000) live.history.shift();
      if (recording) {
        recording.push(entry);
        if (entry.t - recording[0].t >= T.record.max_seconds) stopRecording();
      }
      if (live.history.length % 10 === 0) showStats();
    }

    // The camera's frames as they come (Chrome's MediaStreamTrackProcessor): tracking does not wait
    // for the page's redraws, which a video frame callback does (in software WebGL a redraw of the
    // avatar takes hundreds of milliseconds). The freshest frame is read; older ones are dropped.
    async function pumpFrames(track) {
      const reader = new MediaStreamTrackProcessor({ track, maxBufferSize: 1 }).readable.getReader();
      let lastStamp = -Infinity;
      live.frameSource = "processor";
      try {
        while (running) {
          const asked = performance.now();
          const { value: frame, done } = await reader.read();
          if (done || !running) { if (frame) frame.close(); break; }
          const arrived = performance.now();
          timings.wait.push(arrived - asked);
          const stamp = frame.timestamp / 1e6;  // microseconds → seconds, the camera's clock
          const frameTime = Number.isFinite(stamp) && stamp > lastStamp ? stamp : undefined;
          if (frameTime !== undefined) lastStamp = stamp;
          try { await handle({ captureTime: arrived, frameTime, mediaTime: stamp, presentedFrames: null }, frame); } finally { frame.close(); }
        }
      } finally {
        reader.cancel().catch(() => {});
      }
    }

    function loop() {
      if (!running) return;
      const track = stream && stream.getVideoTracks()[0];
      if (T.track.frame_source === "processor" && typeof MediaStreamTrackProcessor !== "undefined" && track) {
        pumpFrames(track).catch((error) => { if (running) { stop(); say(`tracking stopped: ${error && error.message ? error.message : error}`, "error"); } });
        return;
      }
      live.frameSource = "video";
      const schedule = () => {
        if (!running) return;
        if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(step);
        else requestAnimationFrame(() => step(performance.now(), null));
      };
      const step = (now, metadata) => {
        handle(metadata).then(schedule, (error) => { stop(); say(`tracking stopped: ${error && error.message ? error.message : error}`, "error"); });
      };
      schedule();
    }

    function stop() {
      running = false;
      if (stream) for (const t of stream.getTracks()) t.stop();
      stream = null;
      cameraButton.textContent = "Camera";
      setState("idle");
    }

    async function start() {
      if (running) { stop(); say("Camera off."); return; }
      cameraButton.disabled = true;
      try {
        setState("loading");
        say(`Loading the face tracker (${T.assets.package}) and checking its files…`);
        if (!tracker) tracker = new Tracker(await loadTracker(T), T);
        say("Asking for the camera…");
        try {
          stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" }, audio: false });
        } catch (error) {
          const name = error && error.name;
          if (name === "NotAllowedError" || name === "SecurityError") throw new LiveError("Camera access was denied: allow the camera for this page in the browser's site settings, then press Camera again.");
          if (name === "NotFoundError" || name === "OverconstrainedError") throw new LiveError("No camera was found: connect one and press Camera again.");
          if (name === "NotReadableError") throw new LiveError("The camera could not be started: another program may be using it.");
          throw new LiveError(`The camera could not be opened (${name || error}).`);
        }
        video.srcObject = stream;
        await video.play();
        preview.hidden = false;
        tracker.reset();
        running = true;
        cameraButton.textContent = "Stop camera";
        beginNeutral();
        setState("neutral");
        loop();
      } catch (error) {
        stop();
        if (error instanceof LiveError) { say(error.message, "error"); setState("error"); }
        else { say(`The live view could not start: ${error && error.message ? error.message : error}`, "error"); setState("error"); }
      } finally {
        cameraButton.disabled = false;
      }
    }

    function stopRecording() {
      const records = recording;
      recording = null;
      recordButton.textContent = "Record";
      recordButton.classList.remove("recording");
      if (!records || records.length < 2) { say("The recording was too short to save (fewer than two frames)."); return; }
      const sequence = resampleRecording(records, T.record.fps, T.outputs);
      const text = JSON.stringify(sequence);
      live.lastRecording = sequence;
      if (downloadLink.href.startsWith("blob:")) URL.revokeObjectURL(downloadLink.href);
      downloadLink.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
      downloadLink.hidden = false;
      say(`Recorded ${records.length} frames (${(records[records.length - 1].t - records[0].t).toFixed(1)} s): download it and render it with \`arc2avatar animate OUT --sequence performance.json\`.`);
    }

    function record() {
      if (recording) { stopRecording(); return; }
      recording = [];
      recordButton.textContent = "Stop recording";
      recordButton.classList.add("recording");
      say("Recording…");
    }

    // For tests and scripts: the tracker on one frame (a canvas) at ``time`` seconds, as the camera's
    // frames are tracked (the same state: call in frame order; ``reset`` starts a new track, as the
    // camera's start does). Returns 68×2 pixel indices or null.
    live.trackCanvas = async (canvas, time, reset = false) => {
      if (!tracker) tracker = new Tracker(await loadTracker(T), T);
      if (reset) tracker.reset();
      const lm = await tracker.next(canvas, time);
      return lm ? Array.from({ length: 68 }, (_, i) => [lm[2 * i], lm[2 * i + 1]]) : null;
    };

    cameraButton.addEventListener("click", start);
    neutralButton.addEventListener("click", () => { if (running) beginNeutral(); });
    recordButton.addEventListener("click", record);
    Object.assign(live, { start, setNeutral: () => beginNeutral(), record, stop });
  }

  main().catch((error) => {
    say(`live: ${error && error.message ? error.message : error}`, "error");
    setState("error");
  });
})();
