// steel-inspect console: Server-Sent Events for live state, canvases for frames and coil maps.
// Plain JavaScript, no dependencies; every asset comes from the package.
"use strict";
const Console = (() => {
  const COLOURS = ["#888", "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4"];
  const listeners = [];
  let last = null;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setConn(ok, text) {
    const badge = document.getElementById("conn");
    badge.className = "conn " + (ok ? "ok" : "down");
    badge.textContent = text;
  }

  function connect() {
    const source = new EventSource("/api/stream");
    source.onmessage = (msg) => {
      last = JSON.parse(msg.data);
      const ok = last.broker === "connected";
      setConn(ok, ok ? "broker connected" : "broker " + last.broker);
      listeners.forEach((fn) => fn(last));
    };
    source.onerror = () => setConn(false, "disconnected: console unreachable, retrying");
    // free the connection at once: a browser allows only a few per host over HTTP/1.1
    window.addEventListener("pagehide", () => source.close());
  }

  function fmt(value, digits) {
    if (value === null || value === undefined) return "-";
    return typeof value === "number" ? value.toFixed(digits === undefined ? 0 : digits) : String(value);
  }

  function cameraCard(name) {
    let card = document.getElementById("cam-" + name);
    if (card) return card;
    card = el("div", { id: "cam-" + name, class: "camera" });
    card.appendChild(el("h2", {}, name));
    card.appendChild(el("canvas", { class: "frame", "data-camera": name }));
    card.appendChild(el("dl", { class: "fields" }));
    document.getElementById("cameras").appendChild(card);
    return card;
  }

  function inspectionText(inspection) {
    // a paused line must never read like a line that finds no defects
    if (!inspection) return null;
    if (inspection.state !== "paused") return inspection.state;
    return "PAUSED by " + (inspection.by || "?") + (inspection.reason ? " (" + inspection.reason + ")" : "") +
      " since " + fmt(inspection.since);
  }

  function renderCamera(name, info) {
    const s = info.stats || {}, st = info.status || {};
    const paused = st.inspection && st.inspection.state === "paused";
    const fault = st.model_state === "fault";
    const fields = [
      ["status", st.state], ["inspection", inspectionText(st.inspection)],
      ["camera", s.camera_state], ["broker (daemon)", s.mqtt_state],
      ["tracking", s.tracking_state], ["coil", s.coil_id], ["coil MD m", fmt(s.coil_md_m, 1)],
      ["model", st.model ? st.model.name + " " + st.model.version : "-"],
      ["model outputs", fault ? "FAULT: " + (st.model_fault ? st.model_fault.reason : "?") : st.model_state],
      ["fps", fmt(s.fps, 1)], ["frames", fmt(s.frames_processed)], ["drops", fmt(s.frames_dropped)],
      ["outbox depth", fmt(s.outbox_depth)],
      ["inference ms p50/p99", s.inference_ms ? fmt(s.inference_ms.p50, 1) + " / " + fmt(s.inference_ms.p99, 1) : "-"],
    ];
    const dl = cameraCard(name).querySelector("dl");
    dl.replaceChildren();
    fields.forEach(([k, v]) => {
      dl.appendChild(el("dt", {}, k));
      const attrs = { "data-field": k };
      if ((k === "inspection" && paused) || (k === "model outputs" && fault)) attrs.class = "alert";
      dl.appendChild(el("dd", attrs, v === undefined || v === null ? "-" : String(v)));
    });
  }

  function loadFrame(camera) {
    // the latest frame JPEG and its tile metadata; either may be missing (404): then nothing drawn
    const stamp = Date.now();
    const meta = fetch("/api/latest/" + encodeURIComponent(camera) + "?t=" + stamp)
      .then((r) => (r.ok ? r.json() : null)).catch(() => null);
    const image = new Promise((resolve) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => resolve(null);
      img.src = "/latest/" + encodeURIComponent(camera) + ".jpg?t=" + stamp;
    });
    return Promise.all([image, meta]);
  }

  function label(ctx, text, x, y, colour) {
    // a dark plate behind the text: steel texture makes bare text unreadable
    const width = ctx.measureText(text).width;
    ctx.fillStyle = "rgba(0,0,0,0.7)";
    ctx.fillRect(x - 2, y - 12, width + 4, 15);
    ctx.fillStyle = colour;
    ctx.fillText(text, x, y);
  }

  function drawFrame(canvas, img, meta, scale, withTiles) {
    if (!img) return;
    canvas.width = Math.round(img.naturalWidth * scale);
    canvas.height = Math.round(img.naturalHeight * scale);
    canvas.dataset.loaded = String(img.naturalWidth);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    canvas.dataset.defects = String(meta && meta.defects ? meta.defects.length : 0);
    if (!meta) return;
    ctx.lineWidth = 2;
    ctx.font = "12px sans-serif";
    if (withTiles) {
      (meta.tiles || []).forEach((t) => {
        const [x, y, w, h] = t.box.map((v) => v * scale);
        ctx.strokeStyle = "rgba(255,255,0,0.6)";
        ctx.strokeRect(x, y, w, h);
        (t.scores || []).forEach((p, i) => label(ctx, meta.classes[i] + " " + p.toFixed(2), x + 4,
          y + 16 + 16 * i, p >= meta.thresholds[i] ? "#ff6b6b" : "#ff0"));
      });
    }
    (meta.defects || []).forEach((d) => {
      const [x, y, w, h] = d.box_px.map((v) => v * scale);
      ctx.strokeStyle = COLOURS[d.class_id % COLOURS.length] || "#f00";
      ctx.strokeRect(x, y, w, h);
      label(ctx, d.class_name + " " + d.score.toFixed(2), x + 4, y + h - 6, ctx.strokeStyle);
    });
  }

  function live() {
    listeners.push((snap) => {
      document.getElementById("broker-state").textContent = snap.broker;
      const received = snap.received || {};
      document.getElementById("received").textContent =
        Object.values(received).reduce((a, b) => a + b, 0);
      document.getElementById("latency").textContent = fmt(snap.latency_ms_p50) + " ms";
      const names = Object.keys(snap.cameras);
      document.getElementById("no-cameras").hidden = names.length > 0;
      names.forEach((name) => renderCamera(name, snap.cameras[name]));
    });
    const refresh = () => document.querySelectorAll("canvas.frame").forEach((canvas) =>
      loadFrame(canvas.dataset.camera).then(([img, meta]) =>
        drawFrame(canvas, img, meta, Math.min(1, 800 / ((img && img.naturalWidth) || 800)), false)));
    setInterval(refresh, 2000);
    setTimeout(refresh, 300);
    connect();
  }

  function commissioning() {
    const canvas = document.getElementById("commission");
    const table = document.getElementById("tile-table");
    const refresh = () => {
      if (!canvas.dataset.camera) return;
      loadFrame(canvas.dataset.camera).then(([img, meta]) => {
        drawFrame(canvas, img, meta, 1, document.getElementById("show-scores").checked);
        document.getElementById("frame-info").textContent = meta
          ? meta.frame_id + " · " + meta.ts + " · " + meta.width + "x" + meta.height + " px" : "no frame yet";
        if (!meta) return;
        table.replaceChildren();
        const head = el("tr");
        ["tile x,y"].concat(meta.classes).forEach((c) => head.appendChild(el("th", {}, c)));
        table.appendChild(head);
        meta.tiles.forEach((t) => {
          const row = el("tr");
          row.appendChild(el("td", {}, t.box[0] + "," + t.box[1]));
          t.scores.forEach((p, i) => row.appendChild(el("td", { class: p >= meta.thresholds[i] ? "over" : "" }, p.toFixed(3))));
          table.appendChild(row);
        });
      });
    };
    setInterval(refresh, 2000);
    refresh();
    connect();
  }

  function drawMap(box, points) {
    // one canvas per surface; x = CD (mm from the drive side), y = MD (m from the coil head)
    const sides = {};
    points.forEach((p) => (sides[p.side] = sides[p.side] || []).push(p));
    box.replaceChildren();
    Object.keys(sides).sort().forEach((side) => {
      const pts = sides[side];
      const cdMax = Math.max(1, ...pts.map((p) => p.cd_mm[1]));
      const mdMax = Math.max(1, ...pts.map((p) => p.md_m[1]));
      const wrap = el("div", { class: "map" });
      wrap.appendChild(el("h3", {}, side + " surface · " + pts.length + " defects · " + mdMax.toFixed(1) + " m"));
      const canvas = el("canvas", { class: "map-canvas", "data-side": side, "data-points": String(pts.length) });
      canvas.width = 300; canvas.height = 500;
      const ctx = canvas.getContext("2d");
      ctx.fillStyle = "#222"; ctx.fillRect(0, 0, canvas.width, canvas.height);
      pts.forEach((p) => {
        const x = (p.cd_mm[0] / cdMax) * canvas.width, w = Math.max(2, ((p.cd_mm[1] - p.cd_mm[0]) / cdMax) * canvas.width);
        const y = (p.md_m[0] / mdMax) * canvas.height, h = Math.max(2, ((p.md_m[1] - p.md_m[0]) / mdMax) * canvas.height);
        ctx.fillStyle = COLOURS[p.class_id % COLOURS.length];
        ctx.fillRect(x, y, w, h);
      });
      wrap.appendChild(canvas);
      const legend = el("p", { class: "legend" });
      [...new Set(pts.map((p) => p.class_id + ":" + p.class_name))].forEach((key) => {
        const [id, name] = key.split(/:(.*)/);
        const item = el("span", {}, "■ " + name + " ");
        item.style.color = COLOURS[Number(id) % COLOURS.length];
        legend.appendChild(item);
      });
      wrap.appendChild(legend);
      box.appendChild(wrap);
    });
  }

  function coilMaps() {
    const refresh = () => document.querySelectorAll(".coilmap").forEach((box) =>
      fetch("/api/coils/" + encodeURIComponent(box.dataset.coil))
        .then((r) => (r.ok ? r.json() : []))
        .then((points) => drawMap(box, points)).catch(() => {}));
    let pending = false;
    listeners.push(() => {
      if (pending) return;
      pending = true;
      setTimeout(() => { pending = false; refresh(); }, 1000);
    });
    refresh();
    connect();
  }

  return { live, commissioning, coilMaps, connect };
})();
if (!["live", "commissioning", "coils"].includes(document.body.dataset.view)) Console.connect();
