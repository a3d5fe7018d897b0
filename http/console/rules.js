// Rules: the live rules file in an editor that highlights it and checks it
// as it is typed (POST /v1/rules/validate), a simulated purchase, the diff
// against recent purchases, publishing, and the versions with a diff
// between any two.
import { api, busy, can, h, loading, money, num, session, table, toast, when } from "./app.js";
import { draw } from "./charts.js";

// classify gives each character of a YAML line a class: comment, key,
// string, number or punctuation ("" for plain text).
function classify(line) {
  const cls = new Array(line.length).fill("");
  let i = 0;
  const key = /^(\s*(?:-\s+)?)([A-Za-z_][\w.-]*)(\s*:)(?=\s|$)/.exec(line);
  if (key) {
    const a = key[1].length;
    for (let j = a; j < a + key[2].length; j++) cls[j] = "key";
    i = a + key[2].length;
  }
  for (; i < line.length; i++) {
    const c = line[i];
    if (c === "#" && (i === 0 || /\s/.test(line[i - 1]))) {
      for (let j = i; j < line.length; j++) cls[j] = "com";
      break;
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < line.length && line[j] !== c) j += line[j] === "\\" && c === '"' ? 2 : 1;
      for (let k = i; k <= Math.min(j, line.length - 1); k++) cls[k] = "str";
      i = j;
      continue;
    }
    if (/[\d]/.test(c) && (i === 0 || /[\s:,[{(*+/-]/.test(line[i - 1]))) {
      let j = i;
      while (j < line.length && /[\d.]/.test(line[j])) j++;
      if (j === line.length || /[\s,\]})*+/-]/.test(line[j])) for (let k = i; k < j; k++) cls[k] = "num";
      i = j - 1;
      continue;
    }
    if ("{}[],:-".includes(c)) cls[i] = "pun";
  }
  return cls;
}

// highlight renders the text with its line numbers and underlines each
// problem from its column to the end of the word it starts.
function highlight(code, text, problems) {
  const byLine = new Map();
  for (const p of problems) if (p.line) byLine.set(p.line, [...(byLine.get(p.line) || []), p]);
  const lines = text.split("\n");
  const out = [];
  lines.forEach((line, n) => {
    const ln = n + 1;
    const cls = classify(line);
    const err = new Array(line.length).fill(null);
    for (const p of byLine.get(ln) || []) {
      let from = Math.max(0, Math.min((p.column || 1) - 1, line.length));
      let to = from;
      while (to < line.length && !/\s/.test(line[to])) to++;
      if (to === from) { // past the end of the line: mark its last character, or a space
        from = Math.max(0, line.length - 1);
        to = line.length;
      }
      for (let k = from; k < to; k++) err[k] = p;
    }
    const lnEl = h("span", { class: "ln" + (byLine.has(ln) ? " error" : "") }, String(ln));
    const parts = [lnEl];
    let k = 0;
    while (k < line.length) {
      let j = k;
      while (j < line.length && cls[j] === cls[k] && err[j] === err[k]) j++;
      const seg = line.slice(k, j);
      if (err[k]) {
        parts.push(h("mark", { class: "hl-err " + (cls[k] ? "hl-" + cls[k] : ""), "data-line": ln, "data-column": err[k].column || 1, title: err[k].message }, seg));
      } else if (cls[k]) {
        parts.push(h("span", { class: "hl-" + cls[k] }, seg));
      } else {
        parts.push(seg);
      }
      k = j;
    }
    if (!line.length && byLine.has(ln)) parts.push(h("mark", { class: "hl-err", "data-line": ln, "data-column": 1, title: byLine.get(ln)[0].message }, " "));
    out.push(...parts, "\n");
  });
  code.replaceChildren(...out);
}

export async function renderRules(main) {
  const live = await loading(main, api("GET", "/v1/rules"), "the rules");
  const editable = can("editRules");
  const textarea = h("textarea", { id: "rules-text", spellcheck: "false", autocapitalize: "off", autocomplete: "off", wrap: "off", "aria-label": "Rules file", "aria-describedby": "rules-status", readonly: !editable });
  const code = h("code");
  const pre = h("pre", { "aria-hidden": "true" }, code);
  const status = h("div", { id: "rules-status", role: "status", "aria-live": "polite", class: "small" });
  const problemsEl = h("ul", { class: "problems", "data-testid": "rules-errors" });
  textarea.value = live.source;
  let problems = [];
  const paint = () => highlight(code, textarea.value, problems);
  const sync = () => { pre.scrollTop = textarea.scrollTop; pre.scrollLeft = textarea.scrollLeft; };
  textarea.addEventListener("scroll", sync);
  // Tab indents, as in any code editor; Escape then Tab leaves the field,
  // so the keyboard is never trapped.
  let escaped = false;
  textarea.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") { escaped = true; return; }
    if (ev.key === "Tab" && !escaped && !ev.shiftKey && editable) {
      ev.preventDefault();
      textarea.setRangeText("  ", textarea.selectionStart, textarea.selectionEnd, "end");
      textarea.dispatchEvent(new Event("input"));
    }
    escaped = false;
  });

  const goTo = (p) => {
    const lines = textarea.value.split("\n");
    let pos = 0;
    for (let i = 0; i < p.line - 1 && i < lines.length; i++) pos += lines[i].length + 1;
    pos += Math.max(0, (p.column || 1) - 1);
    textarea.focus();
    textarea.setSelectionRange(pos, pos);
    // Bring the line into view, a few lines from the top.
    const lineHeight = parseFloat(getComputedStyle(textarea).lineHeight) || 19.5;
    textarea.scrollTop = Math.max(0, (p.line - 4) * lineHeight);
    sync();
  };
  const showProblems = (list, headline) => {
    problems = list;
    paint();
    sync();
    problemsEl.replaceChildren(...list.map((p) => h("li", {}, p.line
      ? h("button", { type: "button", onclick: () => goTo(p), "data-line": p.line }, `Line ${p.line}, column ${p.column || 1}`) : "",
      p.line ? ": " : "", p.message)));
    status.replaceChildren(headline);
    status.className = "small " + (list.length ? "error" : "pos");
  };

  let timer = null, seq = 0;
  const validate = async () => {
    const mine = ++seq;
    status.replaceChildren("Checking…");
    status.className = "small muted";
    try {
      await api("POST", "/v1/rules/validate", textarea.value);
      if (mine === seq) showProblems([], "The rules are valid.");
      return true;
    } catch (err) {
      if (mine !== seq) return false;
      const details = Array.isArray(err.details) ? err.details : [];
      showProblems(details.length ? details : [{ message: err.message }], details.length === 1 ? "1 problem" : `${details.length || 1} problems`);
      return false;
    }
  };
  textarea.addEventListener("input", () => {
    paint();
    sync();
    if (!editable) return;
    clearTimeout(timer);
    timer = setTimeout(validate, 400);
  });
  paint();

  const lastSel = h("select", { id: "diff-last", "aria-label": "Period" }, ["30d", "7d", "90d"].map((v) => h("option", { value: v }, `last ${v.replace("d", " days")}`)));
  const diffOut = h("div", { "data-testid": "diff" }, h("p", { class: "muted small" }, "Diff the rules in the editor to see what they would have given the purchases of the period, per rule and per tier, what that costs, and whose tier would change."));
  const diffBtn = h("button", { type: "button", class: "secondary" }, "Diff against recent purchases");
  const publishBtn = h("button", { type: "button" }, "Publish");
  const versionsEl = h("div");
  diffBtn.addEventListener("click", () => busy(diffBtn, runDiff(textarea.value, lastSel.value, diffOut)).catch(() => {}));
  publishBtn.addEventListener("click", async () => {
    if (!(await validate())) {
      toast("Fix the problems before publishing.", true);
      return;
    }
    if (!confirm("Publish these rules? They go live for every purchase from now on.")) return;
    const v = await busy(publishBtn, api("PUT", "/v1/rules", textarea.value)).catch(() => null);
    if (!v) return;
    toast(`Version ${v.version} is live`);
    liveLine.replaceChildren(`Live: version ${v.version}, published ${when(v.loaded_at)} by ${v.by}`);
    liveLine.dataset.version = v.version;
    renderVersions(versionsEl);
  });

  const liveLine = h("p", { class: "muted small", "data-version": live.version }, `Live: version ${live.version}, published ${when(live.loaded_at)} by ${live.by}`);
  const editorCard = h("div", { class: "card" },
    h("h1", {}, "Rules"), liveLine,
    live.last_error ? h("p", { class: "error" }, `The rules file on disk holds text that was refused (${when(live.last_error.at)}).`) : "",
    h("div", { class: "editor" }, pre, textarea),
    status, problemsEl,
    editable ? h("div", { class: "row", style: "margin-top: .75rem" }, lastSel, diffBtn, publishBtn) : h("p", { class: "muted small" }, "This key may read the rules but not change them."));
  main.replaceChildren(editorCard);
  if (editable) main.append(h("div", { class: "card" }, h("h2", {}, "What would have changed"), diffOut), simulateCard(textarea));
  main.append(h("div", { class: "card" }, h("h2", {}, "Versions"), versionsEl));
  renderVersions(versionsEl);
}

async function runDiff(text, last, out) {
  const r = await loading(out, api("POST", "/v1/rules/diff", { new: text, last }), "the diff");
  const sign = (n) => (n > 0 ? "+" : "") + num(n);
  const chart = h("div", { class: "chart", "data-testid": "diff-chart" });
  out.replaceChildren(
    h("p", {}, `${num(r.purchases)} purchases from ${when(r.from)} to ${when(r.to)}${r.truncated ? " (the oldest 200,000)" : ""}.`),
    table(["", "Before", "After", "Change"], [
      h("tr", {}, h("th", { scope: "row" }, "Points"), h("td", { class: "num" }, num(r.points_before)), h("td", { class: "num" }, num(r.points_after)), h("td", { class: "num", "data-testid": "points-change" }, sign(r.points_change))),
      h("tr", {}, h("th", { scope: "row" }, "Cost"), h("td", { class: "num" }, money(r.cost_before)), h("td", { class: "num" }, money(r.cost_after)), h("td", { class: "num" }, money(r.cost_change))),
    ]),
    h("h2", { style: "margin-top: 1rem" }, "Per rule"),
    table(["Rule", "Before", "After", "Change"], r.rules.map((x) => h("tr", {}, h("td", {}, x.rule), h("td", { class: "num" }, num(x.before)), h("td", { class: "num" }, num(x.after)), h("td", { class: "num" }, sign(x.change))))),
    chart,
    h("h2", { style: "margin-top: 1rem" }, "Per tier"),
    table(["Tier", "Purchases", "Before", "After", "Change"], r.tiers.map((x) => h("tr", {}, h("td", {}, x.tier), h("td", { class: "num" }, num(x.purchases)), h("td", { class: "num" }, num(x.before)), h("td", { class: "num" }, num(x.after)), h("td", { class: "num" }, sign(x.change))))),
    h("h2", { style: "margin-top: 1rem" }, `Members whose tier would change: ${num(r.tier_changes_total)}`),
    table(["Member", "Card", "Before", "After"], r.tier_changes.map((x) => h("tr", {}, h("td", {}, h("a", { href: "#/members/" + encodeURIComponent(x.member_id) }, x.member_id)), h("td", {}, x.external_id || ""), h("td", {}, x.before), h("td", {}, x.after))), { empty: "Nobody." }),
    ...(r.notes || []).map((n) => h("p", { class: "muted small" }, n)));
  if (r.rules.length) {
    draw(chart, {
      title: "Points per rule, before and after",
      x: r.rules.map((_, i) => i), labels: r.rules.map((x) => x.rule),
      series: [{ label: "before", values: r.rules.map((x) => x.before), bars: true }, { label: "after", values: r.rules.map((x) => x.after), bars: true }],
    });
  }
}

function simulateCard(textarea) {
  const out = h("div", { "aria-live": "polite" });
  const f = h("form", {},
    h("h2", {}, "Simulate a purchase"),
    h("p", { class: "muted small" }, "With the rules in the editor, for a member or a member of a tier; nothing is stored."),
    h("div", { class: "row" },
      h("label", {}, "Member id", h("input", { name: "member" })),
      h("label", {}, "or tier", h("input", { name: "tier", placeholder: "gold" })),
      h("label", {}, "Amount", h("input", { name: "amount", required: true, inputmode: "decimal", value: "10.00" })),
      h("label", {}, "Item category", h("input", { name: "category", placeholder: "coffee" })),
      h("button", { type: "submit" }, "Simulate")), out);
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const amount = f.amount.value.trim();
    const purchase = { id: "console-simulation", currency: session.who.program.currency, amount };
    if (f.category.value.trim()) purchase.items = [{ sku: "item", category: f.category.value.trim(), quantity: 1, amount }];
    const body = { rules: textarea.value, purchase };
    if (f.member.value.trim()) body.member_id = f.member.value.trim();
    else body.member = f.tier.value.trim() ? { tier: f.tier.value.trim() } : {};
    const r = await busy(f.querySelector("button"), api("POST", "/v1/rules/simulate", body)).catch(() => null);
    if (!r) return;
    out.replaceChildren(h("p", {}, h("strong", { "data-testid": "simulation" }, `${num(r.points)} points`), r.tier && r.tier.changed ? ` · tier becomes ${r.tier.name}` : ""),
      table(["Rule", "Points"], (r.breakdown || []).map((b) => h("tr", {}, h("td", {}, b.rule), h("td", { class: "num" }, num(b.points))))));
  });
  return h("div", { class: "card" }, f);
}

async function renderVersions(el) {
  const r = await loading(el, api("GET", "/v1/rules/versions"), "the versions").catch(() => null);
  if (!r) return;
  const vs = [...r.versions].reverse();
  const opts = (sel) => vs.map((v) => h("option", { value: v.version, selected: v.version === sel || null }, `v${v.version}`));
  const a = h("select", { "aria-label": "Older version" }, opts(vs.length > 1 ? vs[1].version : vs[0].version));
  const b = h("select", { "aria-label": "Newer version" }, opts(vs[0].version));
  const out = h("div");
  const btn = h("button", { type: "button", class: "secondary" }, "Compare");
  btn.addEventListener("click", async () => {
    const [x, y] = await busy(btn, Promise.all([a.value, b.value].map((n) => api("GET", `/v1/rules/versions/${n}`))));
    out.replaceChildren(lineDiff(x.source, y.source));
  });
  el.replaceChildren(
    table(["Version", "Published", "By", "Hash"], vs.map((v) => h("tr", {}, h("td", {}, `v${v.version}`), h("td", {}, when(v.loaded_at)), h("td", {}, v.by), h("td", { class: "small muted" }, v.hash.slice(0, 12))))),
    h("div", { class: "row", style: "margin-top: .75rem" }, a, h("span", {}, "→"), b, btn), out);
}

// lineDiff shows the lines one text removes and adds, by their longest
// common subsequence (rules files are a few hundred lines).
function lineDiff(before, after) {
  const x = before.split("\n"), y = after.split("\n");
  if (x.length * y.length > 4e6) return h("p", { class: "error" }, "The files are too long to compare here.");
  const m = x.length, n = y.length;
  const L = Array.from({ length: m + 1 }, () => new Uint32Array(n + 1));
  for (let i = m - 1; i >= 0; i--) for (let j = n - 1; j >= 0; j--) L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = [];
  let i = 0, j = 0, changed = 0;
  while (i < m || j < n) {
    if (i < m && j < n && x[i] === y[j]) { out.push(h("span", {}, "  " + x[i] + "\n")); i++; j++; }
    else if (j < n && (i === m || L[i][j + 1] >= L[i + 1][j])) { out.push(h("span", { class: "add" }, "+ " + y[j] + "\n")); j++; changed++; }
    else { out.push(h("span", { class: "del" }, "- " + x[i] + "\n")); i++; changed++; }
  }
  return h("div", {}, h("p", { class: "small muted" }, changed ? `${changed} lines differ.` : "The two versions are the same."), h("div", { class: "diffview", "data-testid": "version-diff" }, out));
}
