// arc2avatar viewer: a small WebGL2 Gaussian-splat renderer (ours, no dependency).
//
// Reads the JSON element #arc2avatar-data (layout: arc2avatar/viewer/page.py), puts every splat
// array into a float texture, and draws one screen-aligned quad per splat, back to front.
// Expressions run on the GPU: the vertex shader moves (and turns) each face splat by the
// slider-weighted sum of its per-expression displacements (and rotation vectors) read from
// textures. The CPU only sorts by depth (a counting sort) when the camera or a weight changes.
//
// Conventions are arc2avatar's (arc2avatar/cameras/model.py): world z up, the face toward +y;
// an orbit camera at r·(sinθ sinφ, sinθ cosφ, cosθ) looking at the origin, view space as
// OpenCV's (x right, y down, z forward), pixel centres at +0.5. Rasterisation follows
// arc2avatar.splats.render (gsplat's rules): EWA projection with the clamped Jacobian, Σ2D +
// eps2d, α = min(alpha_max, o·exp(−½ dᵀΣ⁻¹d)), α < alpha_min skipped, the opacity-aware extent
// min(extent_max, sqrt(2 ln(o / alpha_min))) standard deviations.
//
// For tests and scripts: window.arc2avatarViewer (ready, frame, error, idle, setWeights, setCamera,
// setHeadPose, reset, project, state), window.viewerReady, and <body data-ready data-frame data-error>.
"use strict";

(function () {
  const api = { ready: false, frame: 0, error: null };
  window.arc2avatarViewer = api;
  window.viewerReady = false;
  const statusLine = document.getElementById("status");

  function fail(message) {
    api.error = message;
    window.viewerError = message;
    document.body.dataset.error = message;
    statusLine.textContent = message;
    statusLine.classList.add("error");
  }

  // ------------------------------------------------------------------ data
  function base64Bytes(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  async function gunzip(bytes) {
    if (typeof DecompressionStream === "undefined") {
      throw new Error("this browser cannot inflate the embedded data (no DecompressionStream); use a current browser");
    }
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  const TYPED = { float32: Float32Array, float16: Uint16Array, uint8: Uint8Array };

  function readArrays(payload, buffer) {
    const out = {};
    for (const entry of payload.arrays) {
      const Kind = TYPED[entry.dtype];
      if (!Kind) throw new Error(`unknown array type ${entry.dtype} in the viewer data`);
      const count = entry.shape.reduce((a, b) => a * b, 1);
      out[entry.name] = new Kind(buffer.buffer, buffer.byteOffset + entry.offset, count);
    }
    return out;
  }

  let halfTable = null;
  function halfToFloat(halves) {
    if (!halfTable) {
      halfTable = new Float32Array(65536);
      for (let h = 0; h < 65536; h++) {
        const sign = h & 0x8000 ? -1 : 1, exponent = (h >> 10) & 0x1f, fraction = h & 0x3ff;
        halfTable[h] = exponent === 0 ? sign * fraction * Math.pow(2, -24)
          : exponent === 31 ? (fraction ? NaN : sign * Infinity)
          : sign * Math.pow(2, exponent - 15) * (1 + fraction / 1024);
      }
    }
    const out = new Float32Array(halves.length);
    for (let i = 0; i < halves.length; i++) out[i] = halfTable[halves[i]];
    return out;
  }

  // ------------------------------------------------------------------ shaders
  const VERTEX_SHADER = `#version 300 es
precision highp float;
precision highp int;
precision highp sampler2D;
#define K __K__
#define ROT __ROT__
uniform sampler2D u_means, u_scales, u_quats, u_rgba;
#if K > 0
uniform sampler2D u_deltas;
#if ROT
uniform sampler2D u_rotvecs;
#endif
uniform float u_weights[K];
#endif
uniform mat3 u_viewR;
uniform vec3 u_viewT;
uniform vec2 u_focal, u_centre, u_viewport, u_lim;
uniform float u_near, u_far, u_eps2d, u_alphaMin, u_extentMax;
uniform int u_width, u_faceCount, u_faceRows;
in uint a_index;
out vec4 v_color;
out vec2 v_uv;

vec4 quatMul(vec4 a, vec4 b) {  // Hamilton product, (w, x, y, z)
  return vec4(a.x * b.x - dot(a.yzw, b.yzw), a.x * b.yzw + b.x * a.yzw + cross(a.yzw, b.yzw));
}

mat3 quatToMat(vec4 q) {  // columns of the rotation matrix of a unit (w, x, y, z)
  float w = q.x, x = q.y, y = q.z, z = q.w;
  return mat3(1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y + w * z), 2.0 * (x * z - w * y),
              2.0 * (x * y - w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z + w * x),
              2.0 * (x * z + w * y), 2.0 * (y * z - w * x), 1.0 - 2.0 * (x * x + y * y));
}

void cull() { gl_Position = vec4(0.0, 0.0, 2.0, 1.0); v_color = vec4(0.0); v_uv = vec2(0.0); }

void main() {
  int i = int(a_index);
  ivec2 texel = ivec2(i % u_width, i / u_width);
  vec3 mean = texelFetch(u_means, texel, 0).xyz;
  vec4 quat = normalize(texelFetch(u_quats, texel, 0));
#if K > 0
  if (i < u_faceCount) {
    vec3 omega = vec3(0.0);
    for (int k = 0; k < K; ++k) {
      ivec2 at = ivec2(texel.x, texel.y + k * u_faceRows);
      mean += u_weights[k] * texelFetch(u_deltas, at, 0).xyz;
#if ROT
      omega += u_weights[k] * texelFetch(u_rotvecs, at, 0).xyz;
#endif
    }
#if ROT
    float angle = length(omega);
    vec4 turn = angle > 1e-8 ? vec4(cos(0.5 * angle), sin(0.5 * angle) * omega / angle) : vec4(1.0, 0.5 * omega);
    quat = quatMul(normalize(turn), quat);
#endif
  }
#endif
  vec3 cam = u_viewR * mean + u_viewT;
  vec4 rgba = texelFetch(u_rgba, texel, 0);
  float opacity = rgba.a;
  if (cam.z < u_near || cam.z > u_far || opacity < u_alphaMin) { cull(); return; }
  vec3 scale = texelFetch(u_scales, texel, 0).xyz;
  mat3 m = quatToMat(quat) * mat3(scale.x, 0.0, 0.0, 0.0, scale.y, 0.0, 0.0, 0.0, scale.z);
  float tx = clamp(cam.x / cam.z, -u_lim.x, u_lim.x) * cam.z;
  float ty = clamp(cam.y / cam.z, -u_lim.y, u_lim.y) * cam.z;
  mat3 jacobian = mat3(u_focal.x / cam.z, 0.0, 0.0,
                       0.0, u_focal.y / cam.z, 0.0,
                       -u_focal.x * tx / (cam.z * cam.z), -u_focal.y * ty / (cam.z * cam.z), 0.0);
  mat3 t = jacobian * u_viewR * m;
  mat3 cov = t * transpose(t);
  float a = cov[0][0] + u_eps2d, b = cov[0][1], c = cov[1][1] + u_eps2d;
  float det = a * c - b * b;
  if (det <= 0.0) { cull(); return; }
  float mid = 0.5 * (a + c);
  float radius = sqrt(max(mid * mid - det, 0.0));
  float major = mid + radius, minor = max(mid - radius, 0.0);
  vec2 axis = abs(b) > 1e-9 ? normalize(vec2(b, major - a)) : (a >= c ? vec2(1.0, 0.0) : vec2(0.0, 1.0));
  vec2 other = vec2(-axis.y, axis.x);
  float extent = min(u_extentMax, sqrt(2.0 * log(opacity / u_alphaMin)));
  vec2 corner = vec2(float(gl_VertexID & 1), float(gl_VertexID >> 1)) * 2.0 - 1.0;
  vec2 uv = corner * extent;  // in standard deviations along the ellipse's axes
  vec2 centre = u_focal * cam.xy / cam.z + u_centre;
  vec2 pixel = centre + uv.x * sqrt(major) * axis + uv.y * sqrt(minor) * other;
  gl_Position = vec4(2.0 * pixel.x / u_viewport.x - 1.0, 1.0 - 2.0 * pixel.y / u_viewport.y, 0.0, 1.0);
  v_uv = uv;
  v_color = vec4(rgba.rgb, opacity);
}`;

  const FRAGMENT_SHADER = `#version 300 es
precision highp float;
uniform float u_alphaMin, u_alphaMax;
in vec4 v_color;
in vec2 v_uv;
out vec4 fragColor;
void main() {
  float alpha = min(u_alphaMax, v_color.a * exp(-0.5 * dot(v_uv, v_uv)));
  if (alpha < u_alphaMin) discard;
  fragColor = vec4(v_color.rgb * alpha, alpha);  // premultiplied, blended back to front
}`;

  function compile(gl, type, source) {
    const shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
      throw new Error(`shader does not compile: ${gl.getShaderInfoLog(shader)}`);
    }
    return shader;
  }

  function program(gl, vertexSource, fragmentSource) {
    const prog = gl.createProgram();
    gl.attachShader(prog, compile(gl, gl.VERTEX_SHADER, vertexSource));
    gl.attachShader(prog, compile(gl, gl.FRAGMENT_SHADER, fragmentSource));
    gl.bindAttribLocation(prog, 0, "a_index");
    gl.linkProgram(prog);
    if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(`shaders do not link: ${gl.getProgramInfoLog(prog)}`);
    return prog;
  }

  // A (width × rows) texture holding `blocks` blocks of `count` texels each, block b in rows
  // [b·rowsPerBlock, (b+1)·rowsPerBlock): texel i of block b sits at (i % width, b·rowsPerBlock + ⌊i / width⌋).
  function dataTexture(gl, unit, format, source, channels, count, blocks, width) {
    const rowsPerBlock = Math.max(1, Math.ceil(count / width));
    const rows = rowsPerBlock * blocks;
    const limit = gl.getParameter(gl.MAX_TEXTURE_SIZE);
    if (width > limit || rows > limit) {
      throw new Error(`the avatar needs a ${width}×${rows} texture; this GPU allows ${limit}×${limit}`);
    }
    const padded = new source.constructor(width * rows * channels);
    for (let b = 0; b < blocks; b++) {
      padded.set(source.subarray(b * count * channels, (b + 1) * count * channels), b * rowsPerBlock * width * channels);
    }
    const texture = gl.createTexture();
    gl.activeTexture(gl.TEXTURE0 + unit);
    gl.bindTexture(gl.TEXTURE_2D, texture);
    for (const [name, value] of [[gl.TEXTURE_MIN_FILTER, gl.NEAREST], [gl.TEXTURE_MAG_FILTER, gl.NEAREST],
                                 [gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE], [gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE]]) {
      gl.texParameteri(gl.TEXTURE_2D, name, value);
    }
    gl.texImage2D(gl.TEXTURE_2D, 0, format.internal, width, rows, 0, format.format, format.type, padded);
    return rowsPerBlock;
  }

  // ------------------------------------------------------------------ camera
  const DEG = Math.PI / 180;

  function cross(a, b) { return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]; }
  function normalise(a) { const n = Math.hypot(a[0], a[1], a[2]) || 1; return [a[0] / n, a[1] / n, a[2] / n]; }

  // World → camera (OpenCV) of an orbit camera looking at the origin with +z up: rows of R are
  // the camera's right, down and forward axes in world coordinates; t = −R·eye.
  function viewOf(camera) {
    const theta = camera.polarDeg * DEG, phi = camera.azimuthDeg * DEG, r = camera.radius;
    const eye = [r * Math.sin(theta) * Math.sin(phi), r * Math.sin(theta) * Math.cos(phi), r * Math.cos(theta)];
    const forward = normalise([-eye[0], -eye[1], -eye[2]]);
    const right = normalise(cross(forward, [0, 0, 1]));
    const down = cross(forward, right);
    const rows = [right, down, forward];
    const t = rows.map((row) => -(row[0] * eye[0] + row[1] * eye[1] + row[2] * eye[2]));
    return { rows, t };
  }

  // The view of a posed head: world point x drawn at view(M·x + m) for a head pose M (3×3, a
  // rotation times a scale, rows) and m (3), i.e. arc2avatar.avatar.pose's x' = s·R·x + t.
  function composeView(view, pose) {
    if (!pose) return view;
    const M = pose.rows, m = pose.t;
    const rows = view.rows.map((row) => [0, 1, 2].map((c) => row[0] * M[0][c] + row[1] * M[1][c] + row[2] * M[2][c]));
    const t = view.rows.map((row, r) => row[0] * m[0] + row[1] * m[1] + row[2] * m[2] + view.t[r]);
    return { rows, t };
  }

  // ------------------------------------------------------------------ viewer
  async function start() {
    const payload = JSON.parse(document.getElementById("arc2avatar-data").textContent);
    if (payload.format !== "arc2avatar-viewer" || payload.format_version !== 1) {
      throw new Error(`this page holds viewer data of format ${payload.format} ${payload.format_version}; expected arc2avatar-viewer 1`);
    }
    const buffer = await gunzip(base64Bytes(payload.blob));
    const arrays = readArrays(payload, buffer);
    const count = payload.count, faceCount = payload.face_count, names = payload.expressions;
    const K = names.length, hasRotations = K > 0 && "rotvecs" in arrays;
    const width = payload.texture_width, rules = payload.render, background = payload.background;

    const canvas = document.getElementById("canvas");
    const gl = canvas.getContext("webgl2", { antialias: false, alpha: false, depth: false, premultipliedAlpha: true });
    if (!gl) throw new Error("WebGL2 is not available in this browser, which the viewer needs");
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    const formats = {
      rgb32f: { internal: gl.RGB32F, format: gl.RGB, type: gl.FLOAT },
      rgb16f: { internal: gl.RGB16F, format: gl.RGB, type: gl.HALF_FLOAT },
      rgba16f: { internal: gl.RGBA16F, format: gl.RGBA, type: gl.HALF_FLOAT },
      rgba8: { internal: gl.RGBA8, format: gl.RGBA, type: gl.UNSIGNED_BYTE },
    };
    const prog = program(gl, VERTEX_SHADER.replace("__K__", String(K)).replace("__ROT__", hasRotations ? "1" : "0"),
                         FRAGMENT_SHADER);
    gl.useProgram(prog);
    const textures = [["u_means", formats.rgb32f, arrays.means, 3], ["u_scales", formats.rgb16f, arrays.scales, 3],
                      ["u_quats", formats.rgba16f, arrays.quats, 4], ["u_rgba", formats.rgba8, arrays.rgba, 4]];
    textures.forEach(([name, format, data, channels], unit) => {
      dataTexture(gl, unit, format, data, channels, count, 1, width);
      gl.uniform1i(gl.getUniformLocation(prog, name), unit);
    });
    let faceRows = 1;
    if (K > 0) {
      faceRows = dataTexture(gl, 4, formats.rgb16f, arrays.deltas, 3, faceCount, K, width);
      gl.uniform1i(gl.getUniformLocation(prog, "u_deltas"), 4);
      if (hasRotations) {
        dataTexture(gl, 5, formats.rgb16f, arrays.rotvecs, 3, faceCount, K, width);
        gl.uniform1i(gl.getUniformLocation(prog, "u_rotvecs"), 5);
      }
    }
    const uniform = (name) => gl.getUniformLocation(prog, name);
    gl.uniform1i(uniform("u_width"), width);
    gl.uniform1i(uniform("u_faceCount"), K > 0 ? faceCount : 0);
    gl.uniform1i(uniform("u_faceRows"), faceRows);
    gl.uniform1f(uniform("u_near"), payload.camera.near);
    gl.uniform1f(uniform("u_far"), payload.camera.far);
    gl.uniform1f(uniform("u_eps2d"), rules.eps2d);
    gl.uniform1f(uniform("u_alphaMin"), rules.alpha_min);
    gl.uniform1f(uniform("u_alphaMax"), rules.alpha_max);
    gl.uniform1f(uniform("u_extentMax"), rules.extent_max);

    // Draw order: one splat index per instance, rewritten after every sort.
    const order = new Uint32Array(count);
    const indexBuffer = gl.createBuffer();
    const vao = gl.createVertexArray();
    gl.bindVertexArray(vao);
    gl.bindBuffer(gl.ARRAY_BUFFER, indexBuffer);
    gl.bufferData(gl.ARRAY_BUFFER, order.byteLength, gl.DYNAMIC_DRAW);
    gl.enableVertexAttribArray(0);
    gl.vertexAttribIPointer(0, 1, gl.UNSIGNED_INT, 0, 0);
    gl.vertexAttribDivisor(0, 1);
    gl.disable(gl.DEPTH_TEST);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);

    // CPU copies for sorting: the centres at the current weights.
    const baseMeans = arrays.means;
    const deltas = K > 0 ? halfToFloat(arrays.deltas) : new Float32Array(0);
    const positions = new Float32Array(baseMeans);
    const weights = new Float32Array(K);
    const depth = new Float32Array(count);
    const keys = new Uint32Array(count);
    const bins = payload.sort_bins;
    const counts = new Uint32Array(bins);

    function updatePositions() {
      positions.set(baseMeans);
      for (let k = 0; k < K; k++) {
        const w = weights[k];
        if (w === 0) continue;
        const offset = k * faceCount * 3;
        for (let j = 0; j < faceCount * 3; j++) positions[j] += w * deltas[offset + j];
      }
    }

    // Back to front: a counting sort on quantised view depth (farthest first).
    function sortSplats(view) {
      const [r0, r1, r2] = view.rows[2], t2 = view.t[2];
      let near = Infinity, far = -Infinity;
      for (let i = 0; i < count; i++) {
        const z = r0 * positions[3 * i] + r1 * positions[3 * i + 1] + r2 * positions[3 * i + 2] + t2;
        depth[i] = z;
        if (z < near) near = z;
        if (z > far) far = z;
      }
      const scale = far > near ? (bins - 1) / (far - near) : 0;
      counts.fill(0);
      for (let i = 0; i < count; i++) {
        const key = Math.min(bins - 1, Math.floor((far - depth[i]) * scale));
        keys[i] = key;
        counts[key]++;
      }
      for (let b = 0, total = 0; b < bins; b++) { const c = counts[b]; counts[b] = total; total += c; }
      for (let i = 0; i < count; i++) order[counts[keys[i]]++] = i;
      gl.bindBuffer(gl.ARRAY_BUFFER, indexBuffer);
      gl.bufferSubData(gl.ARRAY_BUFFER, 0, order);
    }

    // ---------------------------------------------------------------- state and drawing
    const cam = payload.camera;
    const home = { radius: cam.radius, polarDeg: cam.polar_deg, azimuthDeg: cam.azimuth_deg };
    const camera = { ...home };
    let headPose = null;  // setHeadPose: the whole avatar turned, moved and scaled (null: as saved)
    let pending = false;     // a draw is requested and has not run yet
    let presenting = false;  // a draw ran and has not been counted as shown yet

    function intrinsics() {
      const dpr = window.devicePixelRatio || 1;
      const w = Math.max(1, Math.round(canvas.clientWidth * dpr)), h = Math.max(1, Math.round(canvas.clientHeight * dpr));
      const focal = 0.5 * h / Math.tan(0.5 * cam.fovy);
      return { w, h, dpr, focal };
    }

    function draw() {
      pending = false;
      const { w, h, focal } = intrinsics();
      if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
      const view = composeView(viewOf(camera), headPose);
      sortSplats(view);
      gl.viewport(0, 0, w, h);
      gl.clearColor(background[0], background[1], background[2], 1);
      gl.clear(gl.COLOR_BUFFER_BIT);
      const m = view.rows;  // column-major for GLSL: element (row, col) at col·3 + row
      gl.uniformMatrix3fv(uniform("u_viewR"), false, [m[0][0], m[1][0], m[2][0], m[0][1], m[1][1], m[2][1], m[0][2], m[1][2], m[2][2]]);
      gl.uniform3fv(uniform("u_viewT"), view.t);
      gl.uniform2f(uniform("u_focal"), focal, focal);
      gl.uniform2f(uniform("u_centre"), 0.5 * w, 0.5 * h);
      gl.uniform2f(uniform("u_viewport"), w, h);
      const margin = 1 + rules.fov_clamp_margin;
      gl.uniform2f(uniform("u_lim"), margin * 0.5 * w / focal, margin * 0.5 * h / focal);
      if (K > 0) gl.uniform1fv(uniform("u_weights[0]"), weights);
      gl.bindVertexArray(vao);
      gl.drawArraysInstanced(gl.TRIANGLE_STRIP, 0, 4, count);
      // Counted as shown one animation frame later, once the browser has presented it.
      presenting = true;
      requestAnimationFrame(() => {
        presenting = false;
        api.frame += 1;
        document.body.dataset.frame = String(api.frame);
        if (!api.ready) {
          api.ready = true;
          window.viewerReady = true;
          document.body.dataset.ready = "true";
        }
      });
    }

    function requestDraw() {
      if (!pending) { pending = true; requestAnimationFrame(draw); }
    }

    // ---------------------------------------------------------------- controls
    const sliders = [];
    const sliderBox = document.getElementById("sliders");
    names.forEach((name, k) => {
      const row = document.createElement("div");
      row.className = "slider";
      const label = document.createElement("label");
      const input = document.createElement("input");
      const value = document.createElement("output");
      label.textContent = name;
      label.htmlFor = input.id = `expression-${k}`;
      input.type = "range";
      input.min = payload.slider.min; input.max = payload.slider.max; input.step = payload.slider.step;
      input.value = "0";
      input.dataset.expression = name;
      value.textContent = "0.00";
      input.addEventListener("input", () => {
        weights[k] = Number(input.value);
        value.textContent = weights[k].toFixed(2);
        updatePositions();
        requestDraw();
      });
      label.appendChild(value);
      row.append(label, input);
      sliderBox.appendChild(row);
      sliders.push({ input, value });
    });

    function setWeights(mapping) {
      for (const [name, w] of Object.entries(mapping)) {
        const k = names.indexOf(name);
        if (k < 0) throw new Error(`no slider named ${name}; sliders: ${names.join(", ")}`);
        weights[k] = Number(w);
        sliders[k].input.value = String(w);
        sliders[k].value.textContent = weights[k].toFixed(2);
      }
      updatePositions();
      requestDraw();
    }

    function setCamera(update) {
      Object.assign(camera, update);
      camera.radius = Math.min(cam.max_radius, Math.max(cam.min_radius, camera.radius));
      camera.polarDeg = Math.min(cam.max_polar_deg, Math.max(cam.min_polar_deg, camera.polarDeg));
      requestDraw();
    }

    // A rigid head pose for the whole avatar (rows: 3×3 rotation times scale, t: 3), or null.
    function setHeadPose(rows, t) {
      headPose = rows ? { rows: rows.map((row) => row.map(Number)), t: (t || [0, 0, 0]).map(Number) } : null;
      requestDraw();
    }

    function reset() {
      headPose = null;
      setWeights(Object.fromEntries(names.map((name) => [name, 0])));
      setCamera({ ...home });
    }

    let drag = null;
    canvas.addEventListener("pointerdown", (event) => {
      drag = { x: event.clientX, y: event.clientY };
      canvas.setPointerCapture(event.pointerId);
      canvas.classList.add("dragging");
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
      drag = { x: event.clientX, y: event.clientY };
      // The surface under the pointer follows it: dragging right turns the face to the right.
      setCamera({ azimuthDeg: camera.azimuthDeg + dx * cam.orbit_deg_per_px,
                  polarDeg: camera.polarDeg - dy * cam.orbit_deg_per_px });
    });
    const endDrag = () => { drag = null; canvas.classList.remove("dragging"); };
    canvas.addEventListener("pointerup", endDrag);
    canvas.addEventListener("pointercancel", endDrag);
    canvas.addEventListener("wheel", (event) => {
      event.preventDefault();
      const pixels = event.deltaMode === 1 ? 16 * event.deltaY : event.deltaMode === 2 ? 400 * event.deltaY : event.deltaY;
      setCamera({ radius: camera.radius * Math.exp(pixels * cam.zoom_per_wheel_px) });
    }, { passive: false });
    document.getElementById("reset").addEventListener("click", reset);
    new ResizeObserver(requestDraw).observe(canvas);

    // Where a world point lands on the canvas, CSS pixels from its top-left corner.
    function project(point) {
      const { w, h, dpr, focal } = intrinsics();
      const view = composeView(viewOf(camera), headPose);
      const c = view.rows.map((row, r) => row[0] * point[0] + row[1] * point[1] + row[2] * point[2] + view.t[r]);
      return [(focal * c[0] / c[2] + 0.5 * w) / dpr, (focal * c[1] / c[2] + 0.5 * h) / dpr];
    }

    Object.assign(api, {
      setWeights, setCamera, setHeadPose, reset, project,
      idle: () => !pending && !presenting,  // every change so far is on screen
      state: () => ({ camera: { ...camera }, weights: Object.fromEntries(names.map((n, k) => [n, weights[k]])),
                      width: canvas.width, height: canvas.height, fovy: cam.fovy }),
    });

    const facts = document.getElementById("facts");
    const info = { ...payload.info, expressions: K ? `${K} (${names.join(", ")})` : "none" };
    for (const [key, value] of Object.entries(info)) {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = key.replace(/_/g, " ");
      dd.textContent = typeof value === "object" ? JSON.stringify(value) : String(value);
      facts.append(dt, dd);
    }
    statusLine.textContent = `${count.toLocaleString("en")} splats` + (K ? ` · ${faceCount.toLocaleString("en")} on the face` : "");
    requestDraw();
  }

  start().catch((error) => { console.error(error); fail(`viewer: ${error && error.message ? error.message : error}`); });
})();
