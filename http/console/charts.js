// Charts on uPlot (vendored, MIT): a thin layer that gives every chart the
// same size, colours and an accessible label, and redraws on resize.
import uPlot from "./vendor/uplot/uPlot.esm.js";

const colours = ["#0a5bd3", "#c2410c", "#146c2e", "#8a3ffc", "#b3261e"];

function dark() {
  return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
}

function axis(values) {
  const stroke = dark() ? "#b0b4ba" : "#50545c";
  const grid = { stroke: dark() ? "#3a3d43" : "#e3e5e8", width: 1 };
  return values ? { stroke, grid, values } : { stroke, grid };
}

// draw puts a chart in el: x is the x values (numbers; with labels, the
// index of each label), series [{label, values, bars?, colour?, scale?}].
export function draw(el, { x, labels, series, title, height = 260, yRight }) {
  el.replaceChildren();
  el.setAttribute("role", "img");
  el.setAttribute("aria-label", title);
  const n = series.filter((s) => s.bars).length;
  let k = 0;
  const opts = {
    title,
    width: Math.max(el.clientWidth || el.parentElement.clientWidth || 600, 280),
    height,
    scales: { x: { time: false, range: labels ? [-0.5, labels.length - 0.5] : undefined }, y: { range: (u, lo, hi) => [Math.min(0, lo), Math.max(hi, 1) * 1.05] }, r: { range: [0, 1] } },
    axes: [
      axis(labels ? (u, splits) => splits.map((v) => (Number.isInteger(v) && labels[v] !== undefined ? labels[v] : "")) : undefined),
      axis(),
      ...(yRight ? [{ ...axis((u, splits) => splits.map((v) => Math.round(v * 100) + "%")), side: 1, scale: "r", grid: { show: false } }] : []),
    ],
    series: [{ label: labels ? "" : "x", value: labels ? (u, v) => (v === null ? "" : labels[v]) : undefined }, ...series.map((s, i) => {
      const colour = s.colour || colours[i % colours.length];
      const out = { label: s.label, stroke: colour, width: 2, scale: s.scale || "y" };
      if (s.bars) {
        const align = n === 1 ? 0 : k++ === 0 ? -1 : 1;
        out.fill = colour + "cc";
        out.paths = uPlot.paths.bars({ size: [n === 1 ? 0.6 : 0.35, 80], align });
        out.points = { show: false };
      }
      return out;
    })],
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
  };
  const plot = new uPlot(opts, [x, ...series.map((s) => s.values)], el);
  const resize = new ResizeObserver(() => {
    const w = el.clientWidth;
    if (w && Math.abs(w - plot.width) > 4) plot.setSize({ width: w, height });
  });
  resize.observe(el);
  el.dataset.points = String(x.length);
  return plot;
}
