// Webhooks (admin keys only, as the routes are): each endpoint with the
// deliveries that failed after every retry, which nothing sends again
// unless someone replays them; a test event checks an endpoint at once.
import { api, busy, h, num, loading, table, toast, when } from "./app.js";

export async function renderWebhooks(el) {
  const body = h("div");
  el.replaceChildren(h("h2", {}, "Webhooks"), body);
  const r = await loading(body, api("GET", "/v1/webhooks"), "the webhook endpoints").catch(() => null);
  if (!r) return;
  if (!r.webhooks.length) {
    body.replaceChildren(h("p", { class: "muted" }, "No webhook endpoints: POST /v1/webhooks adds one (docs/API.md, section Webhooks)."));
    return;
  }
  body.replaceChildren(...r.webhooks.map((w) => endpoint(w)));
}

function endpoint(w) {
  const id = encodeURIComponent(w.id);
  const failed = h("div");
  const test = h("button", { type: "button", class: "secondary" }, "Send a test event");
  test.addEventListener("click", () => busy(test, api("POST", `/v1/webhooks/${id}/test`))
    .then(() => toast(`A webhook.test event is on its way to ${w.url}.`)).catch(() => {}));
  // A replay sends again every event since a time; the person picks how
  // far back, counted from now by this browser's clock.
  const since = h("select", { "aria-label": `Replay to ${w.url} the events of the last` },
    h("option", { value: "3600" }, "hour"), h("option", { value: "86400", selected: true }, "24 hours"), h("option", { value: "604800" }, "7 days"));
  const replay = h("button", { type: "button", class: "secondary" }, "Replay");
  replay.addEventListener("click", async () => {
    const from = new Date(Date.now() - 1000 * Number(since.value)).toISOString();
    const r = await busy(replay, api("POST", `/v1/webhooks/${id}/replay`, { since: from })).catch(() => null);
    if (!r) return;
    toast(`${num(r.deliveries)} deliveries to ${w.url} queued again.`);
    renderFailed(failed, w);
  });
  const status = h("span", { class: w.status === "enabled" ? "badge" : "badge bad" }, w.status);
  const section = h("section", { class: "webhook", "data-testid": "webhook", "data-id": w.id, "aria-label": `Webhook ${w.url}` },
    h("h3", { class: "wrap" }, w.url, " ", status),
    h("dl", { class: "facts small" },
      h("dt", {}, "Events"), h("dd", {}, w.events.join(", ")),
      w.description ? [h("dt", {}, "Description"), h("dd", {}, w.description)] : "",
      w.disabled_reason ? [h("dt", {}, "Disabled because"), h("dd", { class: "error" }, w.disabled_reason)] : ""),
    h("div", { class: "row" }, test, h("label", { class: "inline" }, "Replay the events of the last", since), replay),
    h("h4", {}, "Failed deliveries"), failed);
  renderFailed(failed, w);
  return section;
}

async function renderFailed(el, w) {
  const r = await loading(el, api("GET", `/v1/webhooks/${encodeURIComponent(w.id)}/deliveries?status=failed&limit=50`), `the failed deliveries to ${w.url}`).catch(() => null);
  if (!r) return;
  el.replaceChildren(table(["Event", "Attempts", "Last answer", "Last attempt"], r.deliveries.map((d) =>
    h("tr", { "data-event": d.event_id }, h("td", {}, d.type), h("td", { class: "num" }, num(d.attempts)),
      // The error names the status when there was one ("500 Internal
      // Server Error"); a bare code is shown only without it.
      h("td", { class: "error" }, d.last_error || (d.last_status_code ? `HTTP ${d.last_status_code}` : "")),
      h("td", {}, d.last_attempt_at ? when(d.last_attempt_at) : "never"))),
  { empty: "None: every delivery arrived or is still being tried.", "data-testid": "failed-deliveries" }),
  // next_cursor is always there (it resumes, as the events feed's does),
  // so a full page is what says there may be more.
  r.deliveries.length === 50 ? h("p", { class: "muted small" }, "The first 50; the API lists them all.") : "");
}
