// The web chat: one customer, one conversation, over the channel API (no build step, no CDN).
// Customer and agent text only ever reaches the page as text nodes, never as HTML.
"use strict";

const KEY = "tandem-chat";
const STATE_EVENTS = ["opened", "waiting", "joined", "handed_back", "resolved", "reopened", "rated"];
const $ = (id) => document.getElementById(id);
const log = $("log"), choices = $("choices"), statusLine = $("status");
const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

let session = null;          // {id, token, name}
let source = null;           // the EventSource
let lastEventId = "";        // the stream's cursor: where a new stream picks up
let troubles = 0;            // stream errors in a row
let seen = new Set();        // message ids and event ids already shown
let closedAt = null;         // the stream event that closed the chat (null while open)

function loadSession() {
  try {
    const s = JSON.parse(localStorage.getItem(KEY) || "null");
    return s && typeof s.id === "string" && typeof s.token === "string" ? s : null;
  } catch (_) {
    return null;
  }
}

function saveSession(s) {
  session = s;
  try {
    if (s) localStorage.setItem(KEY, JSON.stringify(s));
    else localStorage.removeItem(KEY);
  } catch (_) { /* private mode: the chat still works for this page */ }
}

function api(path) {
  return `/v1/conversations/${encodeURIComponent(session.id)}${path}`;
}

function auth(extra) {
  return Object.assign({ Authorization: "Bearer " + session.token }, extra || {});
}

// --- rendering -------------------------------------------------------------------------------

function stamp(iso) {
  const t = document.createElement("time");
  const when = iso ? new Date(iso) : new Date();
  t.dateTime = when.toISOString();
  t.textContent = clock.format(when);
  t.title = when.toLocaleString();
  return t;
}

function scrollDown() {
  log.scrollTop = log.scrollHeight;
}

function bubble(role, who, text, at) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  const meta = document.createElement("div");
  meta.className = "meta";
  const name = document.createElement("span");
  name.className = "who";
  name.textContent = who;
  meta.append(name, stamp(at));
  const body = document.createElement("p");
  body.textContent = text;
  div.append(meta, body);
  return div;
}

function systemLine(text, at, milestone) {
  const div = document.createElement("div");
  div.className = "system" + (milestone ? " milestone" : "");
  const line = document.createElement("span");
  line.className = "line";
  line.textContent = text;
  div.append(line, stamp(at));
  log.appendChild(div);
  keepUnsentLast();
  scrollDown();
}

function setWho(text) {
  $("who").textContent = text;
}

function showChoices(list) {
  choices.replaceChildren();
  for (const choice of list) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = choice;
    b.addEventListener("click", () => {
      clearChoices();
      sendText(choice);
      $("text").focus();
    });
    choices.appendChild(b);
  }
  choices.hidden = list.length === 0;
}

function clearChoices() {
  choices.replaceChildren();
  choices.hidden = true;
}

function showMessage(m) {
  if (seen.has("m" + m.id)) return;
  seen.add("m" + m.id);
  clearChoices();
  if (m.role === "customer") {
    // Our own message coming back from the stream: confirm the bubble already shown for it.
    const mine = [...log.querySelectorAll(".msg.customer:not([data-id])")]
      .find((el) => el.dataset.text === m.text);
    if (mine) {
      confirmSent(mine, m.id);
      return;
    }
  }
  if (m.role === "system") {
    systemLine(m.text, m.at, false);
    return;
  }
  const who = m.role === "customer" ? "You" : m.role === "agent" ? (m.author || "Support") : "Assistant";
  const div = bubble(m.role, who, m.text, m.at);
  div.dataset.id = m.id;
  log.appendChild(div);
  keepUnsentLast();
  scrollDown();
  if (m.role === "bot" && Array.isArray(m.choices) && m.choices.length) showChoices(m.choices);
}

function showState(type, e) {
  if (seen.has("e" + e.id)) return;
  seen.add("e" + e.id);
  switch (type) {
    case "joined":
      systemLine(e.agent ? `${e.agent} joined the chat` : "A person from our team joined the chat", e.at, true);
      setWho(e.agent ? `You're chatting with ${e.agent} from our team.` : "You're chatting with a person from our team.");
      break;
    case "handed_back":
      systemLine("You're back with the assistant", e.at, true);
      setWho("You're chatting with our assistant.");
      break;
    case "waiting":
      setWho("Waiting for a person from our team…");
      break;
    case "resolved":
      clearChoices();
      systemLine("This chat is closed", e.at, true);
      setWho("This chat is closed.");
      closed(e.id);
      break;
    case "reopened":
      systemLine("You reopened this chat", e.at, true);
      reopened(e);
      break;
    case "rated":
      if (closedAt !== null) rated();
      break;
    default:
      break;
  }
}

// --- closing and rating ----------------------------------------------------------------------

function closed(eventId) {
  closedAt = eventId;
  $("closed").hidden = false;
  $("rating").hidden = false;
  $("thanks").hidden = true;
  $("rating").reset();
  $("rating-error").hidden = true;
}

function reopened(e) {
  closedAt = null;
  $("closed").hidden = true;
  if (e.state === "human") setWho(e.agent ? `You're chatting with ${e.agent} from our team.` : "You're chatting with a person from our team.");
  else if (e.state === "waiting") setWho("Waiting for a person from our team…");
  else setWho("You're chatting with our assistant.");
}

function rated() {
  $("rating").hidden = true;
  $("thanks").hidden = false;
}

$("rating").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const picked = document.querySelector('input[name="score"]:checked');
  const error = $("rating-error");
  if (!picked) {
    error.textContent = "Please choose a number from 1 to 5.";
    error.hidden = false;
    document.getElementById("score-1").focus();
    return;
  }
  const comment = $("comment").value.trim();
  const button = ev.submitter || $("rating").querySelector("button");
  button.disabled = true;
  try {
    const r = await fetch(api("/rating"), {
      method: "POST",
      headers: auth({ "Content-Type": "application/json" }),
      body: JSON.stringify({ score: Number(picked.value), comment: comment || null }),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || `error ${r.status}`);
    rated();
    $("thanks").focus();
  } catch (e) {
    error.textContent = "Your rating was not sent: " + e.message + ". Please try again.";
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
});

$("new-chat").addEventListener("click", () => {
  const name = session ? session.name : "";
  leave();
  $("name").value = name || "";
  $("name").focus();
});

// --- sending ---------------------------------------------------------------------------------

// What the customer wrote and the hub has not confirmed yet, kept across reloads: a page
// closed or reloaded while offline no longer loses it (it comes back marked unsent).
const UNSENT = "tandem-chat-unsent";

function unsentList() {
  try {
    const list = JSON.parse(localStorage.getItem(UNSENT) || "[]");
    return Array.isArray(list) ? list : [];
  } catch (_) {
    return [];
  }
}

function saveUnsent(list) {
  try {
    if (list.length) localStorage.setItem(UNSENT, JSON.stringify(list));
    else localStorage.removeItem(UNSENT);
  } catch (_) { /* private mode: kept for this page only */ }
}

function remember(div) {
  if (!session) return;
  const list = unsentList().filter((u) => u.key !== div.dataset.key);
  list.push({ chat: session.id, key: div.dataset.key, text: div.dataset.text });
  saveUnsent(list);
}

function forget(key) {
  saveUnsent(unsentList().filter((u) => u.key !== key));
}

function restoreUnsent() {
  for (const u of unsentList()) {
    if (!session || u.chat !== session.id || typeof u.text !== "string" || typeof u.key !== "string") continue;
    if ([...log.querySelectorAll(".msg.customer")].some((el) => el.dataset.key === u.key)) continue;
    const div = bubble("customer", "You", u.text, null);
    div.dataset.text = u.text;
    div.dataset.key = u.key;
    log.appendChild(div);
    markUnsent(div, "Not sent yet: the page closed before it went.", true);
  }
}

// Unsent messages stay below everything the conversation already holds.
function keepUnsentLast() {
  for (const el of log.querySelectorAll(".msg.failed")) log.appendChild(el);
}

function newKey() {
  return crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2);
}

function confirmSent(div, id) {
  forget(div.dataset.key);
  div.dataset.id = id;
  seen.add("m" + id);
  div.classList.remove("pending", "failed");
  div.querySelector(".unsent")?.remove();
  div.removeAttribute("aria-busy");
}

function markUnsent(div, why, canRetry) {
  div.classList.remove("pending");
  div.classList.add("failed");
  div.removeAttribute("aria-busy");
  div.querySelector(".unsent")?.remove();
  const note = document.createElement("div");
  note.className = "unsent";
  note.setAttribute("role", "alert");
  const words = document.createElement("span");
  words.textContent = why;
  note.appendChild(words);
  if (canRetry) {
    const retry = document.createElement("button");
    retry.type = "button";
    retry.textContent = "Retry";
    retry.setAttribute("aria-label", "Retry sending: " + div.dataset.text.slice(0, 60));
    retry.addEventListener("click", () => {
      post(div);
      $("text").focus();
    });
    note.appendChild(retry);
  } else {
    forget(div.dataset.key); // refused as written: the Edit below is the way on
    const edit = document.createElement("button");
    edit.type = "button";
    edit.textContent = "Edit";
    edit.addEventListener("click", () => {
      $("text").value = div.dataset.text;
      div.remove();
      $("text").focus();
    });
    note.appendChild(edit);
  }
  div.appendChild(note);
  scrollDown();
}

async function post(div) {
  div.classList.add("pending");
  div.classList.remove("failed");
  div.setAttribute("aria-busy", "true");
  div.querySelector(".unsent")?.remove();
  let r;
  try {
    r = await fetch(api("/messages"), {
      method: "POST",
      headers: auth({ "Content-Type": "application/json" }),
      // The same key on a retry: the hub stores the message once however often it is sent.
      body: JSON.stringify({ text: div.dataset.text, idempotency_key: div.dataset.key }),
    });
  } catch (_) {
    markUnsent(div, "Not sent: no connection.", true);
    return;
  }
  const body = await r.json().catch(() => ({}));
  if (r.ok) {
    const id = String(body.id);
    if (div.dataset.id === id) return; // the stream confirmed it already
    if (seen.has("m" + id)) {
      forget(div.dataset.key);
      div.remove(); // the stream showed it first, as its own bubble
    }
    else confirmSent(div, id);
    return;
  }
  if (r.status === 401 || r.status === 403 || r.status === 404) {
    markUnsent(div, "Not sent: this chat is no longer available.", false);
    sessionGone();
    return;
  }
  if (r.status === 429 || r.status >= 500) {
    const wait = Number(r.headers.get("Retry-After")) || 0;
    markUnsent(div, wait ? `Not sent: busy, try again in ${wait} s.` : "Not sent: the service had a problem.", true);
    return;
  }
  markUnsent(div, "Not sent: " + (body.error || `error ${r.status}`), false);
}

function sendText(text) {
  if (!text.trim() || !session) return;
  const div = bubble("customer", "You", text, null);
  div.dataset.text = text;
  div.dataset.key = newKey();
  log.appendChild(div);
  remember(div);
  scrollDown();
  post(div);
}

$("send").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const box = $("text");
  const text = box.value;
  if (!text.trim()) return;
  box.value = "";
  clearChoices();
  sendText(text);
  box.focus();
});

$("text").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    $("send").requestSubmit();
  }
});

// --- following the conversation --------------------------------------------------------------

function track(ev) {
  if (ev.lastEventId) lastEventId = ev.lastEventId;
  troubles = 0;
  statusLine.textContent = "";
}

function follow() {
  if (source) source.close();
  const query = new URLSearchParams({ token: session.token });
  if (lastEventId) query.set("after", lastEventId);
  const es = new EventSource(api("/stream?") + query);
  source = es;
  es.addEventListener("message", (ev) => {
    track(ev);
    showMessage(JSON.parse(ev.data));
  });
  for (const type of STATE_EVENTS) {
    es.addEventListener(type, (ev) => {
      track(ev);
      showState(type, JSON.parse(ev.data));
    });
  }
  es.onopen = () => {
    statusLine.textContent = "";
  };
  es.onerror = () => {
    if (source !== es) return;
    troubles += 1;
    statusLine.textContent = "Reconnecting…";
    // The browser retries by itself, unless the answer was a refusal: then ask what is wrong.
    if (es.readyState === EventSource.CLOSED || troubles >= 3) check();
  };
}

async function check() {
  const es = source;
  let r = null;
  try {
    r = await fetch(api(""), { headers: auth() });
  } catch (_) { /* the hub is down: keep trying */ }
  if (source !== es || !session) return;
  if (r && (r.status === 401 || r.status === 403 || r.status === 404)) {
    sessionGone();
    return;
  }
  if (es.readyState === EventSource.CLOSED) setTimeout(() => { if (source === es) follow(); }, 2000);
}

function sessionGone() {
  const name = session ? session.name : "";
  leave();
  $("name").value = name || "";
  const notice = $("notice");
  notice.textContent = "We couldn't find your previous chat (it may have expired). Start a new one below.";
  notice.hidden = false;
  $("name").focus();
}

function leave() {
  if (source) source.close();
  source = null;
  saveSession(null);
  saveUnsent([]);
  lastEventId = "";
  seen = new Set();
  closedAt = null;
  log.replaceChildren();
  clearChoices();
  statusLine.textContent = "";
  $("closed").hidden = true;
  $("log").hidden = true;
  $("send").hidden = true;
  $("intro").hidden = false;
  $("notice").hidden = true;
  setWho("Our assistant answers right away; a person joins whenever you need one.");
}

function enter(s) {
  saveSession(s);
  $("intro").hidden = true;
  $("log").hidden = false;
  $("send").hidden = false;
  setWho("You're chatting with our assistant.");
  follow();
  restoreUnsent();
}

$("start").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = $("name").value.trim();
  const button = ev.submitter || $("start").querySelector("button");
  button.disabled = true;
  try {
    const r = await fetch("/web/conversations", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name }),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || `error ${r.status}`);
    enter({ id: String(body.id), token: body.customer_token, name });
    $("text").focus();
  } catch (e) {
    const notice = $("notice");
    notice.textContent = "The chat could not start: " + (e.message || "no connection") + ". Please try again.";
    notice.hidden = false;
  } finally {
    button.disabled = false;
  }
});

async function resume(s) {
  session = s;
  let r = null;
  try {
    r = await fetch(api(""), { headers: auth() });
  } catch (_) { /* the hub is down: show the chat and let the stream reconnect */ }
  if (r && (r.status === 401 || r.status === 403 || r.status === 404)) {
    sessionGone();
    return;
  }
  enter(s);
}

const stored = loadSession();
if (stored) resume(stored);
else $("name").focus();
