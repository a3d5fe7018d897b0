// The console: a page per hash route (#/members, #/rules, #/dashboard),
// calling only the public /v1 API with the key the person signed in with.
// The key lives in sessionStorage: it goes when the tab closes.
import { renderSearch, renderMember } from "./members.js";
import { renderRules } from "./rules.js";
import { renderDashboard } from "./dashboard.js";

const KEY = "loyalty.console.key";

// ApiError is an answer in the API's one error shape.
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || "";
    this.field = e.field || "";
    this.details = e.details;
  }
}

// api calls the API. body: an object (sent as JSON), a string (sent as
// text: rules files) or undefined. opts.raw returns the Response itself.
export async function api(method, path, body, opts = {}) {
  const headers = {};
  const key = sessionStorage.getItem(KEY);
  if (key) headers.Authorization = "Bearer " + key;
  let payload;
  if (typeof body === "string") {
    headers["Content-Type"] = "text/plain; charset=utf-8";
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers, body: payload, signal: opts.signal });
  if (opts.raw && res.ok) return res;
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    if (res.status === 401 && !opts.signingIn) signOut("Your key was not accepted; sign in again.");
    throw new ApiError(res.status, data);
  }
  return data;
}

// session is who is signed in: {name, role, open, program}.
export const session = { who: null };

// can tells whether the signed-in key's role may do a thing, as the
// server's routes allow it (http/server.go); the server decides anyway.
export function can(what) {
  const role = session.who && session.who.role;
  if (role === "admin") return true;
  const allowed = {
    pos: ["refund", "redeem", "cancelRedemption", "block", "takeReward", "cardLink", "enrol"],
    marketer: ["editRules", "analytics"],
    reader: [],
  };
  return (allowed[role] || []).includes(what);
}

// Formatting: money in the program's currency, in the browser's locale;
// times and dates in the program's time zone.
const locale = navigator.language || "en-US";
export function money(s) {
  const p = session.who && session.who.program;
  if (s === undefined || s === null || s === "") return "";
  const n = Number(s);
  if (!p || Number.isNaN(n)) return String(s);
  return new Intl.NumberFormat(locale, { style: "currency", currency: p.currency, minimumFractionDigits: p.currency_digits, maximumFractionDigits: p.currency_digits }).format(n);
}
export function num(n) {
  return n === undefined || n === null ? "" : new Intl.NumberFormat(locale).format(n);
}
function zone() { return (session.who && session.who.program && session.who.program.timezone) || "UTC"; }
export function when(t) {
  if (!t || t.startsWith("0001-")) return "";
  return new Intl.DateTimeFormat(locale, { timeZone: zone(), dateStyle: "medium", timeStyle: "short" }).format(new Date(t));
}
// day writes a YYYY-MM-DD date, which is already a day of the program.
export function day(d) {
  if (!d) return "";
  return new Intl.DateTimeFormat(locale, { timeZone: "UTC", dateStyle: "medium" }).format(new Date(d + "T12:00:00Z"));
}

// h builds an element: h("td", {class: "num"}, "12"). Children are
// strings (text, never HTML) or nodes.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// table makes a table from column heads and rows of cells.
export function table(heads, rows, opts = {}) {
  return h("div", { class: "scroll" }, h("table", opts,
    h("thead", {}, h("tr", {}, heads.map((x) => h("th", { scope: "col", class: /^(points|balance|amount|change|before|after|count|processed|cost|purchases|members|share|earned|redeemed|expired|attempts)/i.test(x) ? "num" : null }, x)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: heads.length, class: "muted" }, opts.empty || "Nothing yet.")))));
}

export function toast(msg, bad = false) {
  const box = document.getElementById("toast");
  const el = h("div", { class: bad ? "bad" : null }, msg);
  box.append(el);
  setTimeout(() => el.remove(), 6000);
}

// loading puts a placeholder in el while p runs, and an error if it fails.
export async function loading(el, p, what) {
  el.replaceChildren(h("p", { class: "loading" }, `Loading ${what}…`));
  try {
    return await p;
  } catch (err) {
    el.replaceChildren(h("p", { class: "error", role: "alert" }, `Could not load ${what}: ${err.message}`));
    throw err;
  }
}

// busy disables a button while p runs and reports a failure.
export async function busy(button, p) {
  button.disabled = true;
  try {
    return await p;
  } catch (err) {
    toast(err.message, true);
    throw err;
  } finally {
    button.disabled = false;
  }
}

// newID makes an idempotency id, so a write retried after a lost answer
// is not applied twice.
export function newID(prefix) {
  const b = crypto.getRandomValues(new Uint8Array(8));
  return `console-${prefix}-` + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function signOut(why) {
  sessionStorage.removeItem(KEY);
  session.who = null;
  if (why) toast(why, true);
  location.hash = "#/signin";
}

async function whoami() {
  try {
    session.who = await api("GET", "/v1/whoami", undefined, { signingIn: true });
  } catch {
    session.who = null;
  }
  return session.who;
}

function renderSignIn(main) {
  const input = h("input", { id: "key", type: "password", autocomplete: "current-password", required: true, "aria-describedby": "key-help" });
  const msg = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "card", style: "max-width: 28rem" },
    h("h1", {}, "Sign in"),
    h("label", { for: "key" }, "API key", input),
    h("p", { id: "key-help", class: "muted small" }, "The key is kept in this tab only, and sent to the API as a Bearer header."),
    msg,
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, input.value.trim());
    if (await whoami()) {
      location.hash = "#/members";
    } else {
      sessionStorage.removeItem(KEY);
      msg.textContent = "That key was not accepted.";
      input.focus();
    }
  });
  main.replaceChildren(form);
  input.focus();
}

function renderNav(route) {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  if (!session.who) {
    nav.replaceChildren();
    who.replaceChildren();
    return;
  }
  const links = [["#/members", "Members"], ["#/rules", "Rules"], ["#/dashboard", "Dashboard"]];
  nav.replaceChildren(...links.map(([href, label]) =>
    h("a", { href, "aria-current": route.startsWith(href) ? "page" : null }, label)));
  const p = session.who.program || {};
  document.getElementById("brand").textContent = p.name || "Loyalty";
  who.replaceChildren(`${session.who.name} · ${session.who.role}`,
    session.who.open ? "" : h("button", { class: "secondary", style: "margin-left: .75rem", onclick: () => signOut() }, "Sign out"));
}

async function route() {
  const main = document.getElementById("main");
  const hash = location.hash || "#/members";
  if (!session.who) await whoami();
  if (!session.who) {
    renderNav("");
    renderSignIn(main);
    return;
  }
  if (hash === "#/signin") {
    location.hash = "#/members";
    return;
  }
  renderNav(hash);
  document.getElementById("toast").replaceChildren(); // the last page's news
  const [, page, arg] = hash.split("/");
  main.replaceChildren();
  try {
    switch (page) {
      case "members":
        if (arg) await renderMember(main, decodeURIComponent(arg));
        else await renderSearch(main);
        break;
      case "rules": await renderRules(main); break;
      case "dashboard": await renderDashboard(main); break;
      default: main.replaceChildren(h("p", {}, "No such page."));
    }
  } catch (err) {
    if (!main.querySelector(".error")) main.append(h("p", { class: "error", role: "alert" }, err.message));
  }
  main.focus({ preventScroll: true });
}

window.addEventListener("hashchange", route);
route();
