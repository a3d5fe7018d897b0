// Members: find one by card, email or phone, and their page: balance,
// tier, analytics, ledger, purchases, coupons, and what the key may do.
import { api, busy, can, day, h, loading, money, newID, num, session, table, toast, when } from "./app.js";

// lookups tries what the query could be, in the order a help desk meets
// them: a card number, an email, a phone number; a name last.
function lookups(q) {
  if (q.includes("@")) return [["email", q]];
  if (/^\+?[\d\s().-]{6,}$/.test(q)) return [["external_id", q], ["phone", q]];
  return [["external_id", q]];
}

export async function renderSearch(main) {
  const input = h("input", { id: "q", type: "search", required: true, autocomplete: "off", placeholder: "card-000123, ana@example.com, +15550100, Ana" });
  const out = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "card", role: "search" },
    h("h1", {}, "Find a member"),
    h("div", { class: "row" }, h("label", { for: "q", style: "flex: 1" }, "Card number, email, phone or name", input), h("button", { type: "submit" }, "Search")));
  const byName = async (q, cursor) => {
    const r = await api("GET", `/v1/members?name=${encodeURIComponent(q)}&limit=50${cursor ? "&cursor=" + encodeURIComponent(cursor) : ""}`);
    const more = r.next_cursor ? h("button", { type: "button", class: "secondary" }, "More") : "";
    if (more) more.addEventListener("click", () => busy(more, byName(q, r.next_cursor)).catch(() => {}));
    out.replaceChildren(
      table(["Name", "Card", "Email", "Tier", "Points", "Status"], r.members.map((m) => h("tr", {},
        h("td", {}, h("a", { href: "#/members/" + encodeURIComponent(m.id) }, m.name)), h("td", {}, m.external_id || ""), h("td", {}, m.email || ""),
        h("td", {}, m.tier.name), h("td", { class: "num" }, num(m.balance.available)), h("td", {}, m.status))), { empty: `Nobody has the card, email, phone or a name with “${q}”${r.next_cursor ? " among the members read so far" : ""}.` }),
      more);
  };
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = input.value.trim();
    const found = await loading(out, (async () => {
      for (const [key, value] of lookups(q)) {
        const r = await api("GET", `/v1/members?${key}=${encodeURIComponent(value)}`);
        if (r.members.length) return r.members;
      }
      return [];
    })(), "members").catch(() => null);
    if (!found) return;
    if (found.length === 1) {
      location.hash = "#/members/" + encodeURIComponent(found[0].id);
      return;
    }
    if (q.length < 2 || q.includes("@")) {
      out.replaceChildren(h("p", { class: "muted" }, `Nobody has the card, email or phone “${q}”.`));
      return;
    }
    await loading(out, byName(q, ""), "members by name").catch(() => {});
  });
  main.replaceChildren(form, out);
  if (can("enrol")) main.append(enrolForm());
  input.focus();
}

function enrolForm() {
  const f = {};
  const field = (name, label, type = "text") => h("label", {}, label, (f[name] = h("input", { name, type })));
  const form = h("form", { class: "card" }, h("h2", {}, "Enrol a member"),
    h("div", { class: "row" }, field("external_id", "Card number"), field("name", "Name"), field("email", "Email", "email"), field("phone", "Phone", "tel")),
    h("p", {}, h("button", { type: "submit" }, "Enrol")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = {};
    for (const [k, el] of Object.entries(f)) if (el.value.trim()) body[k] = el.value.trim();
    const m = await busy(form.querySelector("button"), api("POST", "/v1/members", body));
    location.hash = "#/members/" + encodeURIComponent(m.id);
  });
  return form;
}

export async function renderMember(main, id) {
  const [member, balance] = await loading(main, Promise.all([
    api("GET", `/v1/members/${encodeURIComponent(id)}`),
    api("GET", `/v1/members/${encodeURIComponent(id)}/balance`),
  ]), "the member");
  const mid = encodeURIComponent(member.id);
  const reload = () => renderMember(main, id);

  const title = member.name || member.external_id || member.email || member.id;
  const head = h("div", { class: "card" },
    h("h1", {}, title, " ", h("span", { class: member.status === "blocked" ? "badge bad" : "badge" }, member.status)),
    h("dl", { class: "facts" },
      h("dt", {}, "Card"), h("dd", {}, member.external_id || "—"),
      h("dt", {}, "Email"), h("dd", {}, member.email || "—"),
      h("dt", {}, "Phone"), h("dd", {}, member.phone || "—"),
      h("dt", {}, "Enrolled"), h("dd", {}, when(member.enrolled_at)),
      h("dt", {}, "Id"), h("dd", { class: "small muted" }, member.id)));

  const t = balance.tier;
  let progress = null;
  if (t.next) {
    const have = Number(t.value), left = Number(t.next.remaining);
    const pct = have + left > 0 ? Math.floor((100 * have) / (have + left)) : 0;
    const metric = (v) => (t.metric === "spend" ? money(v) : `${num(Number(v))} ${t.metric}`);
    progress = [
      h("div", { class: "bar", role: "progressbar", "aria-label": `Progress to ${t.next.name}`, "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": pct }, h("div", { style: `width: ${pct}%` })),
      h("p", { class: "small muted" }, `${metric(t.value)} of ${metric(have + left)}: ${metric(t.next.remaining)} to ${t.next.name}`),
    ];
  }
  const balCard = h("div", { class: "card" },
    h("h2", {}, "Points"),
    h("div", { class: "big", "data-testid": "balance" }, num(balance.available)),
    h("p", { class: "muted small" }, `${num(balance.pending)} pending · ${num(balance.lifetime_earned)} earned in all`),
    balance.expiring.length
      ? table(["Expires on", "Points"], balance.expiring.map((x) => h("tr", {}, h("td", {}, day(x.on)), h("td", { class: "num" }, num(x.points)))))
      : h("p", { class: "muted small" }, "No points due to expire."));
  const tierCard = h("div", { class: "card" },
    h("h2", {}, "Tier: ", t.name),
    h("p", { class: "small muted" }, `Since ${when(t.since)}${t.keeps_until ? ` · kept until ${when(t.keeps_until)}` : ""}`),
    progress || h("p", { class: "small muted" }, "The top tier."));
  const a = member.analytics;
  const anCard = h("div", { class: "card" }, h("h2", {}, "Analytics"),
    a ? h("dl", { class: "facts" },
      h("dt", {}, "Segment"), h("dd", {}, a.segment),
      h("dt", {}, "Lifecycle"), h("dd", {}, a.lifecycle),
      h("dt", {}, "Churn risk"), h("dd", { class: a.churn_risk ? "neg" : null }, a.churn_risk ? "yes" : "no"),
      h("dt", {}, "CLV"), h("dd", {}, money(a.clv)),
      h("dt", {}, "RFM"), h("dd", {}, `${a.rfm} (R${a.r_score} F${a.f_score} M${a.m_score})`),
      h("dt", {}, "Last purchase"), h("dd", {}, a.recency_days === null ? "never" : `${a.recency_days} days ago`),
      h("dt", {}, "Spend in window"), h("dd", {}, money(a.monetary)),
      h("dt", {}, "As of"), h("dd", { class: "small" }, when(a.computed_at)))
      : h("p", { class: "muted small" }, "The analytics job has not run for this member yet."));

  const ledger = h("div", { class: "card" });
  const purchases = h("div", { class: "card" });
  const coupons = h("div", { class: "card" });
  main.replaceChildren(head, h("div", { class: "grid" }, balCard, tierCard, anCard), actions(member, reload), ledger, purchases, coupons);
  renderLedger(ledger, purchases, member, reload);
  renderCoupons(coupons, mid);
}

// actions offers what the key's role may do to this member.
function actions(member, reload) {
  const mid = encodeURIComponent(member.id);
  const forms = [];
  const form = (title, fields, submit) => {
    const f = h("form", {}, h("h2", {}, title), h("div", { class: "row" }, ...fields, h("button", { type: "submit" }, title)));
    f.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      await busy(f.querySelector("button[type=submit]"), submit(f));
    });
    forms.push(f);
  };
  const input = (name, label, attrs = {}) => h("label", {}, label, h("input", { name, ...attrs }));
  if (can("redeem")) {
    form("Redeem", [input("points", "Points", { type: "number", min: 1, required: true }), input("reward", "For")], async (f) => {
      await api("POST", `/v1/members/${mid}/redemptions`, { id: newID("redeem"), points: Number(f.points.value), reward: f.reward.value || undefined });
      toast(`Redeemed ${f.points.value} points`);
      reload();
    });
  }
  if (can("adjust")) {
    form("Adjust", [input("points", "Points (negative to take)", { type: "number", required: true }), input("reason", "Reason", { required: true })], async (f) => {
      await api("POST", `/v1/members/${mid}/adjustments`, { id: newID("adjust"), points: Number(f.points.value), reason: f.reason.value });
      toast("Adjusted");
      reload();
    });
  }
  if (can("takeReward")) {
    const select = h("select", { name: "reward", required: true });
    api("GET", `/v1/rewards?member_id=${mid}`).then((r) => {
      select.replaceChildren(h("option", { value: "" }, "Choose a reward"), ...r.rewards.map((x) => h("option", { value: x.name, disabled: !x.available }, `${x.title} (${num(x.cost)} pts)${x.available ? "" : " – " + x.reason.replace(/_/g, " ")}`)));
    }).catch((err) => toast(err.message, true));
    form("Take reward", [h("label", {}, "Reward", select)], async (f) => {
      const r = await api("POST", `/v1/members/${mid}/rewards`, { id: newID("reward"), reward: f.reward.value });
      toast(`Coupon ${r.coupon.code} issued`);
      reload();
    });
  }
  if (can("cardLink")) {
    const out = h("p", { class: "small wrap", "data-testid": "card-link" });
    form("Card link", [h("label", {}, "Valid for", h("select", { name: "ttl" }, h("option", { value: "720h" }, "30 days"), h("option", { value: "168h" }, "7 days"), h("option", { value: "24h" }, "1 day")))], async (f) => {
      const r = await api("POST", `/v1/members/${mid}/card-link`, { ttl: f.ttl.value });
      out.replaceChildren(h("a", { href: r.url, target: "_blank", rel: "noreferrer" }, r.url), h("br"), `valid until ${when(r.expires_at)}`);
    });
    forms[forms.length - 1].append(out);
  }
  if (can("block")) {
    const blocked = member.status === "blocked";
    const b = h("button", { type: "button", class: blocked ? "secondary" : "danger" }, blocked ? "Unblock" : "Block");
    b.addEventListener("click", async () => {
      if (!blocked && !confirm("Block this member? They will earn and redeem nothing until unblocked.")) return;
      await busy(b, api("PATCH", `/v1/members/${mid}`, { status: blocked ? "active" : "blocked" }));
      reload();
    });
    forms.push(h("div", {}, h("h2", {}, "Status"), b));
  }
  if (!forms.length) return h("p", { class: "muted small" }, "This key may only read members.");
  return h("div", { class: "card" }, h("div", { class: "grid" }, forms));
}

const typeNames = { earn: "earned", bonus: "bonus", redeem: "redeemed", redeem_cancel: "redemption cancelled", refund: "refund", expire: "expired", adjust: "adjustment", reward: "reward", reward_refund: "reward given back" };

// renderLedger shows the ledger a page at a time, newest first, and the
// purchases its earn entries name, with their refunds.
function renderLedger(el, purchasesEl, member, reload) {
  const mid = encodeURIComponent(member.id);
  const body = h("tbody", {});
  const more = h("button", { class: "secondary", type: "button" }, "Older entries");
  const purchaseIDs = [];
  el.replaceChildren(h("h2", {}, "Ledger"), h("div", { class: "scroll" }, h("table", { "data-testid": "ledger" },
    h("thead", {}, h("tr", {}, ["When", "Type", "Points", "Balance", "Source", "Rules", "Reason", ""].map((x) => h("th", { scope: "col", class: /Points|Balance/.test(x) ? "num" : null }, x)))),
    body)), h("p", {}, more));
  let cursor = "";
  const page = async () => {
    const r = await busy(more, api("GET", `/v1/members/${mid}/ledger?limit=20${cursor ? "&cursor=" + encodeURIComponent(cursor) : ""}`));
    for (const e of r.entries) {
      let act = "";
      if (e.type === "redeem" && can("cancelRedemption")) {
        act = h("button", { class: "secondary", type: "button" }, "Cancel");
        act.addEventListener("click", async () => {
          await busy(act, api("POST", `/v1/redemptions/${encodeURIComponent(e.ref)}/cancel`));
          toast("Redemption cancelled");
          reload();
        });
      }
      if (e.type === "earn" && e.ref && !purchaseIDs.includes(e.ref)) purchaseIDs.push(e.ref);
      body.append(h("tr", { "data-type": e.type },
        h("td", {}, when(e.at)), h("td", {}, typeNames[e.type] || e.type),
        h("td", { class: "num " + (e.points < 0 ? "neg" : "pos") }, (e.points > 0 ? "+" : "") + num(e.points)),
        h("td", { class: "num" }, num(e.balance_after)), h("td", { class: "small" }, e.ref),
        h("td", { class: "small" }, e.rules_version ? "v" + e.rules_version : ""), h("td", { class: "small" }, e.note), h("td", {}, act)));
    }
    if (!body.children.length) body.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No entries yet.")));
    cursor = r.next_cursor || "";
    more.hidden = !cursor;
    renderPurchases(purchasesEl, purchaseIDs, reload);
  };
  more.addEventListener("click", page);
  page().catch(() => {});
}

async function renderPurchases(el, ids, reload) {
  el.replaceChildren(h("h2", {}, "Purchases"), h("p", { class: "loading" }, "Loading purchases…"));
  const list = await Promise.all(ids.map((id) => api("GET", `/v1/purchases/${encodeURIComponent(id)}`).catch(() => null)));
  const rows = list.filter(Boolean).map((p) => {
    const left = Number(p.amount) - Number(p.refunded_amount || 0);
    let act = "";
    if (can("refund") && left > 0) {
      const amount = h("input", { name: "amount", inputmode: "decimal", size: 8, value: left.toFixed(session.who.program.currency_digits), "aria-label": `Refund amount for ${p.id}` });
      const f = h("form", { class: "row" }, amount, h("button", { type: "submit", class: "secondary" }, "Refund"));
      f.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const r = await busy(f.querySelector("button"), api("POST", `/v1/purchases/${encodeURIComponent(p.id)}/refunds`, { id: newID("refund"), amount: amount.value.trim() }));
        toast(`Refunded ${money(r.amount)}: ${num(r.points)} points`);
        reload();
      });
      act = f;
    }
    return h("tr", {}, h("td", {}, when(p.occurred_at)), h("td", { class: "small" }, p.id), h("td", { class: "num" }, money(p.amount)),
      h("td", { class: "num" }, num(p.points)), h("td", { class: "num" }, p.refunds.length ? `${money(p.refunded_amount)} (${p.refunds.length})` : "—"), h("td", {}, act));
  });
  el.replaceChildren(h("h2", {}, "Purchases"), h("p", { class: "muted small" }, "The purchases of the ledger entries shown above."),
    table(["When", "Id", "Amount", "Points", "Refunded", "Refund"], rows, { "data-testid": "purchases" }));
}

async function renderCoupons(el, mid) {
  el.replaceChildren(h("h2", {}, "Coupons"));
  const body = h("div");
  el.append(body);
  const r = await loading(body, api("GET", `/v1/members/${mid}/coupons`), "coupons").catch(() => null);
  if (!r) return;
  body.replaceChildren(table(["Code", "Reward", "Status", "Issued", "Expires", "Points"], r.coupons.map((c) =>
    h("tr", {}, h("td", { class: "small" }, c.code), h("td", {}, c.title), h("td", {}, c.status), h("td", {}, when(c.issued_at)), h("td", {}, when(c.expires_at)), h("td", { class: "num" }, num(c.points))))));
}
