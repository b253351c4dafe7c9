// The console's only script: refreshes the live parts of a page in place, and draws the
// overview's charts as inline SVG from the figures the page carries. No library, no build.
"use strict";

(() => {
  const REFRESH_MS = 2000;
  const HISTORY = 150; // lag samples kept: the last five minutes at one per refresh
  const SVG = "http://www.w3.org/2000/svg";
  const lagHistory = [];

  // ------------------------------------------------------------ live refresh

  function refreshUrl() {
    const main = document.getElementById("main");
    return main ? main.dataset.refresh : undefined;
  }

  function busy(region) {
    // Never pull a region from under the user: a focused control, an opened detail.
    return region.contains(document.activeElement) || region.querySelector("details[open]");
  }

  async function refresh(url) {
    try {
      const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (answer.redirected && new URL(answer.url).pathname === "/console/sign-in") {
        window.location.assign(answer.url);
        return;
      }
      if (answer.ok) {
        const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
        for (const region of fresh.querySelectorAll("[data-live][id]")) {
          const here = document.getElementById(region.id);
          if (here && !busy(here)) here.replaceWith(document.importNode(region, true));
        }
        draw();
      }
    } catch (_) {
      // The server or the network hiccupped: the next round tries again.
    }
  }

  function loop() {
    const url = refreshUrl();
    if (!url || !document.querySelector("[data-live]")) return;
    window.setTimeout(async () => {
      if (!document.hidden) await refresh(url);
      loop();
    }, REFRESH_MS);
  }

  // ------------------------------------------------------------ charts

  function node(name, attrs, parent, text) {
    const made = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs)) made.setAttribute(key, String(value));
    if (text !== undefined) made.textContent = text;
    if (parent) parent.appendChild(made);
    return made;
  }

  function clock(iso) {
    return new Date(iso).toLocaleTimeString([], {
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    });
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const step = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 5, 10]) if (value <= m * step) return m * step;
    return 10 * step;
  }

  function format(value) {
    if (Number.isInteger(value)) return String(value);
    if (value >= 100) return Math.round(value).toString();
    if (value >= 10) return value.toFixed(1);
    return value.toFixed(2).replace(/\.?0+$/, "") || "0";
  }

  // series: [{name, cls, values}]; labels: one per x; shape: "stacked" or "grouped" bars, or
  // "lines".
  function plot(figure, labels, series, shape, summary) {
    const bars = shape !== "lines";
    // Drawn at the figure's own width, so that its text keeps the page's size.
    const W = Math.max(figure.clientWidth, 280), L = 48, R = 8, T = 10, B = 28;
    const H = Number(figure.dataset.height || 200);
    const width = W - L - R, height = H - T - B;
    const totals = labels.map((_, i) =>
      shape === "stacked"
        ? series.reduce((sum, s) => sum + (s.values[i] || 0), 0)
        : Math.max(0, ...series.map((s) => s.values[i] || 0))
    );
    const top = niceMax(Math.max(0, ...totals));
    const svg = node("svg", {
      viewBox: `0 0 ${W} ${H}`,
      height: H,
      role: "img",
      "aria-label": summary,
      class: "svg",
    });
    for (let k = 0; k <= 5; k++) {
      const y = T + height - (height * k) / 5;
      node("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid" }, svg);
      node("text", { x: L - 6, y: y + 4, class: "axis", "text-anchor": "end" }, svg, format((top * k) / 5));
    }
    const n = Math.max(labels.length, 1);
    const slot = width / n;
    labels.forEach((label, i) => {
      if (i % Math.ceil(n / Math.max(2, Math.floor(width / 90))) === 0) {
        node("text", { x: L + slot * i + slot / 2, y: H - 8, class: "axis", "text-anchor": "middle" }, svg, label);
      }
    });
    if (shape === "grouped") {
      const each = Math.max(Math.min((slot - 4) / series.length, 28), 1);
      const offset = (slot - each * series.length) / 2;
      labels.forEach((_, i) => {
        series.forEach((s, k) => {
          const v = s.values[i] || 0;
          if (v <= 0) return;
          const h = (height * v) / top;
          const x = L + slot * i + offset + each * k;
          node("rect", { x, y: T + height - h, width: Math.max(each - 1, 1), height: h, class: s.cls }, svg);
        });
      });
    } else if (bars) {
      labels.forEach((_, i) => {
        let base = 0;
        for (const s of series) {
          const v = s.values[i] || 0;
          if (v <= 0) continue;
          const h = (height * v) / top;
          const y = T + height - ((height * base) / top) - h;
          const thick = Math.max(Math.min(slot - 2, 48), 1);
          node("rect", { x: L + slot * i + (slot - thick) / 2, y, width: thick, height: h, class: s.cls }, svg);
          base += v;
        }
      });
    } else {
      for (const s of series) {
        let d = "";
        let pen = "M";
        const dots = [];
        s.values.forEach((v, i) => {
          if (v === null || v === undefined) {
            pen = "M";
            return;
          }
          const x = (L + slot * i + slot / 2).toFixed(1);
          const y = (T + height - (height * v) / top).toFixed(1);
          d += `${pen}${x},${y} `;
          pen = "L";
          dots.push([x, y]);
        });
        if (d) node("path", { d, class: `line ${s.cls}` }, svg);
        // A point of its own (a lone bucket with jobs) draws no line: its dot shows it.
        for (const [cx, cy] of dots) node("circle", { cx, cy, r: 2.5, class: `dot ${s.cls}` }, svg);
      }
    }
    const legend = document.createElement("figcaption");
    const list = document.createElement("ul");
    list.className = "legend";
    for (const s of series) {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = `swatch ${s.cls}`;
      swatch.setAttribute("aria-hidden", "true");
      item.append(swatch, ` ${s.name}`);
      list.appendChild(item);
    }
    legend.appendChild(list);
    figure.replaceChildren(svg, legend);
  }

  function draw() {
    const source = document.getElementById("overview-data");
    if (!source) return;
    const data = JSON.parse(source.textContent);
    const labels = data.buckets.map((b) => clock(b.start));
    const rate = (name) => data.buckets.map((b) => b.ended[name] / data.bucket_s);
    const throughput = document.getElementById("chart-throughput");
    if (throughput) {
      const last = data.buckets[data.buckets.length - 1];
      plot(
        throughput,
        labels,
        outcomes(rate),
        "stacked",
        `Jobs per second by outcome over the last ${data.window_s / 60} minutes; latest bucket: ` +
          `${last.ended.succeeded} succeeded, ${last.ended.failed} failed, ${last.ended.cancelled} cancelled.`
      );
    }
    const latency = document.getElementById("chart-latency");
    if (latency) {
      const q = (name) => data.buckets.map((b) => b.latency_ms[name]);
      plot(
        latency,
        labels,
        [
          { name: "p50", cls: "s-p50", values: q("p50") },
          { name: "p95", cls: "s-p95", values: q("p95") },
          { name: "p99", cls: "s-p99", values: q("p99") },
        ],
        "lines",
        `Submit-to-end latency percentiles per bucket; over the window p50 ${format(data.latency_ms.p50 || 0)} ms, ` +
          `p99 ${format(data.latency_ms.p99 || 0)} ms.`
      );
    }
    const lag = document.getElementById("chart-lag");
    if (lag && data.partitions) {
      const sum = (key) => data.partitions.reduce((total, p) => total + (p[key] || 0), 0);
      if (!lagHistory.length || lagHistory[lagHistory.length - 1].at !== data.at) {
        lagHistory.push({ at: data.at, lag: sum("lag"), pending: sum("pending") });
        if (lagHistory.length > HISTORY) lagHistory.shift();
      }
      plot(
        lag,
        lagHistory.map((h) => clock(h.at)),
        [
          { name: "group lag", cls: "s-lag", values: lagHistory.map((h) => h.lag) },
          { name: "pending", cls: "s-pending", values: lagHistory.map((h) => h.pending) },
        ],
        "lines",
        `Consumer-group lag and pending entries of every partition since this page opened; now ` +
          `${sum("lag")} behind and ${sum("pending")} pending.`
      );
    }
    drawBreakdowns(data);
  }

  // The three outcomes as series, each one's values given by `values(outcome)`.
  function outcomes(values) {
    return [
      { name: "succeeded", cls: "s-ok", values: values("succeeded") },
      { name: "failed", cls: "s-failed", values: values("failed") },
      { name: "cancelled", cls: "s-cancelled", values: values("cancelled") },
    ];
  }

  function drawBreakdowns(data) {
    const models = document.getElementById("chart-models");
    if (models) {
      const count = (name) => data.models.map((m) => m.ended[name]);
      plot(
        models,
        data.models.map((m) => m.model_version),
        outcomes(count),
        "stacked",
        "Jobs ended in the window per model: " +
          data.models
            .map((m) => `${m.model_version} ${m.ended.succeeded} succeeded, ${m.ended.failed} failed`)
            .join("; ")
      );
    }
    const partitions = document.getElementById("chart-partitions");
    if (partitions && data.partitions) {
      const value = (key) => data.partitions.map((p) => p[key] || 0);
      plot(
        partitions,
        data.partitions.map((p) => `partition ${p.partition}`),
        [
          { name: "group lag", cls: "s-lag", values: value("lag") },
          { name: "pending", cls: "s-pending", values: value("pending") },
          { name: "dead letters", cls: "s-failed", values: value("dead_letters") },
        ],
        "grouped",
        "Per partition now: " +
          data.partitions
            .map((p) => `${p.partition}: lag ${p.lag}, ${p.pending} pending, ${p.dead_letters} dead letters`)
            .join("; ")
      );
    }
  }

  function start() {
    draw();
    loop();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
