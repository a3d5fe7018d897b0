// Dashboard: the analytics summary (segments, lifecycle, the 80/20 share,
// liability), points per day, the members at risk of churning, the
// jobs, and for admin keys the webhook endpoints and their failed
// deliveries. Every figure comes from the API (docs/ANALYTICS.md defines
// them).
import { api, busy, can, h, loading, money, num, table, toast, when } from "./app.js";
import { draw } from "./charts.js";
import { renderWebhooks } from "./webhooks.js";

export async function renderDashboard(main) {
  main.replaceChildren(h("h1", {}, "Dashboard"));
  if (can("analytics")) {
    const summary = h("div"), daily = h("div", { class: "card" }), pareto = h("div", { class: "card" }), churn = h("div", { class: "card" });
    main.append(summary, h("div", { class: "grid" }, daily, pareto), churn);
    renderSummary(summary, pareto);
    renderDaily(daily);
    renderChurn(churn);
  } else {
    main.append(h("p", { class: "muted" }, "This key may not read analytics; the jobs are below."));
  }
  const jobs = h("div", { class: "card" });
  main.append(jobs);
  renderJobs(jobs);
  if (can("webhooks")) {
    const hooks = h("div", { class: "card", "data-testid": "webhooks" });
    main.append(hooks);
    renderWebhooks(hooks);
  }
}

function hbars(title, counts, total) {
  const rows = Object.entries(counts);
  return h("div", { class: "card" }, h("h2", {}, title), ...rows.map(([k, v]) => {
    const pct = total ? (100 * v) / total : 0;
    return h("div", { class: "hbar" }, h("span", {}, k), h("div", { class: "bar", "aria-hidden": "true" }, h("div", { style: `width: ${pct.toFixed(1)}%` })), h("span", { class: "num small" }, num(v)));
  }), h("table", { class: "small", style: "position: absolute; left: -9999px" }, rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v)))));
}

async function renderSummary(el, paretoEl) {
  let s;
  try {
    s = await loading(el, api("GET", "/v1/analytics/summary"), "the analytics summary");
  } catch (err) {
    if (err.status !== 404) return;
    const run = can("runJob") ? h("button", { type: "button" }, "Run analytics now") : "";
    if (run) run.addEventListener("click", async () => { await busy(run, api("POST", "/v1/jobs/analytics/run")); toast("Analytics computed"); renderDashboard(document.getElementById("main")); });
    el.replaceChildren(h("div", { class: "card" }, h("p", {}, "The analytics job has not run yet, so there are no segments, lifecycle stages or revenue shares to show."), run));
    paretoEl.replaceChildren(h("h2", {}, "Revenue: the 80/20 share"), h("p", { class: "muted" }, "After the analytics job's first run."));
    return;
  }
  const p = s.points;
  el.replaceChildren(
    h("p", { class: "muted small" }, `As of ${when(s.computed_at)}, over ${s.window}.`),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h2", {}, "Members"), h("div", { class: "big" }, num(s.members)), h("p", { class: "muted small" }, `${num(s.active)} active · ${num(s.churn_risk)} at risk of churning`)),
      h("div", { class: "card" }, h("h2", {}, "Outstanding points"), h("div", { class: "big" }, num(p.outstanding)), h("p", { class: "muted small" }, `Liability ${money(p.liability)}`)),
      h("div", { class: "card", "data-testid": "expiring" }, h("h2", {}, "Expiring"), h("dl", { class: "facts" }, h("dt", {}, "in 30 days"), h("dd", {}, num(p.expiring_30d)), h("dt", {}, "in 90 days"), h("dd", {}, num(p.expiring_90d)))),
      h("div", { class: "card" }, h("h2", {}, "Revenue"), h("div", { class: "big" }, money(s.revenue.total)), h("p", { class: "muted small" }, `${Math.round(100 * s.revenue.top_share)}% from the top ${num(s.revenue.top_members)} members`))),
    h("div", { class: "grid" }, hbars("Segments", s.segments, s.members), hbars("Lifecycle", s.lifecycle, s.members)),
    s.rewards && s.rewards.length ? h("div", { class: "card" }, h("h2", {}, "Rewards"), table(["Reward", "Issued", "Used", "Expired", "Cancelled", "Outstanding", "Points spent"],
      s.rewards.map((r) => h("tr", {}, h("td", {}, r.title || r.reward), ...[r.issued, r.used, r.expired, r.cancelled, r.outstanding, r.points_spent].map((v) => h("td", { class: "num" }, num(v))))))) : "");
  renderPareto(paretoEl, s);
}

// renderPareto draws members by spend, largest first (bars, by tenth of
// the members) and the cumulative share of revenue (line). It reads the
// members' analytics a page at a time, at most sampleMax; past that the
// members in id order (random ids) are a sample.
const sampleMax = 5000;
async function renderPareto(el, s) {
  const chart = h("div", { class: "chart", "data-testid": "pareto-chart" });
  const note = h("p", { class: "muted small" });
  el.replaceChildren(h("h2", {}, "Revenue: the 80/20 share"), chart, note);
  const spend = [];
  let cursor = "";
  try {
    await loading(chart, (async () => {
      do {
        const r = await api("GET", `/v1/analytics/members?limit=500${cursor ? "&cursor=" + encodeURIComponent(cursor) : ""}`);
        for (const m of r.members) spend.push(Number(m.analytics.monetary) || 0);
        cursor = r.next_cursor || "";
      } while (cursor && spend.length < sampleMax);
    })(), "members' spend");
  } catch {
    return;
  }
  spend.sort((a, b) => b - a);
  const total = spend.reduce((a, b) => a + b, 0);
  if (!spend.length || total <= 0) {
    chart.replaceChildren(h("p", { class: "muted" }, "No spend in the window yet."));
    return;
  }
  const buckets = 10, share = [], cum = [];
  let acc = 0;
  for (let b = 0; b < buckets; b++) {
    const part = spend.slice(Math.floor((b * spend.length) / buckets), Math.floor(((b + 1) * spend.length) / buckets)).reduce((a, c) => a + c, 0);
    acc += part;
    share.push(part);
    cum.push(acc / total);
  }
  draw(chart, {
    title: "Spend per tenth of members, largest first, and the cumulative share",
    x: share.map((_, i) => i), labels: share.map((_, i) => `${(i + 1) * 10}%`),
    series: [{ label: "spend", values: share, bars: true }, { label: "cumulative share", values: cum, scale: "r", colour: "#c2410c" }],
    yRight: true,
  });
  note.textContent = `The top 20% of members made ${Math.round(100 * cum[1])}% of the spend` +
    (cursor ? ` (a sample of ${num(spend.length)} members).` : ` (${num(spend.length)} members).`) +
    ` The analytics job counts the top ${num(s.revenue.top_members)} members at ${Math.round(100 * s.revenue.top_share)}%.`;
}

async function renderDaily(el) {
  const chart = h("div", { class: "chart", "data-testid": "points-chart" });
  el.replaceChildren(h("h2", {}, "Points per day, last 30 days"), chart);
  const r = await loading(chart, api("GET", "/v1/analytics/points?days=30"), "points per day").catch(() => null);
  if (!r) return;
  const d = r.days;
  draw(chart, {
    title: "Points earned, redeemed and expired per day",
    x: d.map((_, i) => i), labels: d.map((x) => x.date.slice(5)),
    series: [
      { label: "earned", values: d.map((x) => x.earned) },
      { label: "redeemed", values: d.map((x) => x.redeemed) },
      { label: "expired", values: d.map((x) => x.expired) },
    ],
  });
}

async function renderChurn(el) {
  const body = h("div");
  const csv = h("button", { type: "button", class: "secondary" }, "Export CSV");
  csv.addEventListener("click", () => busy(csv, (async () => {
    // The export needs the key, so it is fetched here and saved as a file.
    const res = await api("GET", "/v1/analytics/members?churn_risk=true&format=csv", undefined, { raw: true });
    const url = URL.createObjectURL(await res.blob());
    const a = h("a", { href: url, download: "churn-risk.csv" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  })()).catch(() => {}));
  el.replaceChildren(h("div", { class: "row", style: "justify-content: space-between" }, h("h2", {}, "At risk of churning"), csv), body);
  const r = await loading(body, api("GET", "/v1/analytics/members?churn_risk=true&limit=50"), "members at risk").catch(() => null);
  if (!r) return;
  body.replaceChildren(table(["Member", "Card", "Tier", "Points", "Last purchase", "CLV"], r.members.map((m) =>
    h("tr", {}, h("td", {}, h("a", { href: "#/members/" + encodeURIComponent(m.id) }, m.name || m.email || m.id)), h("td", {}, m.external_id || ""), h("td", {}, m.tier),
      h("td", { class: "num" }, num(m.points)), h("td", {}, m.analytics.recency_days === null ? "never" : `${m.analytics.recency_days} days ago`), h("td", { class: "num" }, money(m.analytics.clv)))),
    { empty: "Nobody, or the analytics job has not run." }),
  r.next_cursor ? h("p", { class: "muted small" }, "The first 50; the CSV has them all.") : "");
}

async function renderJobs(el) {
  el.replaceChildren(h("h2", {}, "Jobs"));
  const body = h("div");
  el.append(body);
  const jobs = await loading(body, api("GET", "/v1/jobs"), "the jobs").catch(() => null);
  if (!jobs) return;
  body.replaceChildren(table(["Job", "Schedule", "Last run", "Took", "Processed", "Result", "Next run", ""], jobs.map((j) => {
    const r = j.last_run;
    const took = r ? `${((new Date(r.finished_at) - new Date(r.started_at)) / 1000).toFixed(2)} s` : "";
    let act = "";
    if (can("runJob")) {
      act = h("button", { type: "button", class: "secondary" }, "Run now");
      act.addEventListener("click", async () => {
        await busy(act, api("POST", `/v1/jobs/${encodeURIComponent(j.name)}/run`)).catch(() => null);
        renderJobs(el);
      });
    }
    return h("tr", {}, h("td", {}, j.name), h("td", { class: "small" }, j.schedule), h("td", {}, r ? when(r.started_at) : "never"), h("td", { class: "num" }, took),
      h("td", { class: "num" }, r ? num(r.processed) : ""), h("td", { class: r && r.error ? "error" : "pos" }, r ? r.error || "ok" : ""), h("td", {}, j.next_run ? when(j.next_run) : ""), h("td", {}, act));
  })));
}
