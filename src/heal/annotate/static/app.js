// HEAL annotate: the page over the JSON API (routes.py). Plain JS, no build step.
// Every text from the server is put on the page with textContent, never as HTML: prompts are clinical text, not markup.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("heal-token"); // per tab; gone when the tab closes
let me = null;
let current = null; // the pair on screen
let awaitingNext = false; // the AI verdict is shown; Enter moves on

async function api(method, path, body) {
  const response = await fetch("/api" + path, {
    method,
    headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401) { signOut(data.detail || "please sign in"); throw new Error("401"); }
  if (!response.ok) {
    const detail = Array.isArray(data.detail) ? data.detail.map((d) => d.msg).join("; ") : data.detail;
    throw new Error(detail || response.statusText);
  }
  return data;
}

function show(id, visible) { $(id).hidden = !visible; }

function signOut(reason) {
  token = null; me = null; current = null;
  sessionStorage.removeItem("heal-token");
  ["work", "admin", "progress-wrap", "signout", "admin-toggle"].forEach((id) => show(id, false));
  show("login", true);
  $("who").textContent = "";
  $("login-error").textContent = reason || "";
  $("token").focus();
}

async function signIn(candidate) {
  token = candidate;
  try {
    me = await api("GET", "/me");
  } catch (e) { if (e.message !== "401") $("login-error").textContent = e.message; return; }
  sessionStorage.setItem("heal-token", token);
  show("login", false); show("work", true); show("signout", true); show("admin-toggle", me.admin);
  $("who").textContent = "signed in as " + me.name + (me.admin ? " (admin)" : "");
  await loadGuidelines();
  await nextPair();
}

async function loadGuidelines() {
  const g = await api("GET", "/guidelines");
  $("preamble").textContent = g.preamble || "";
  const list = $("axes");
  list.replaceChildren();
  for (const axis of g.axes) {
    const item = document.createElement("li");
    const name = document.createElement("strong");
    name.textContent = axis.name + ": ";
    item.append(name, document.createTextNode(axis.text));
    list.append(item);
  }
  $("g-preamble").value = g.preamble || "";
  $("g-axes").value = g.axes.map((a) => a.name + ": " + a.text).join("\n");
}

function setProgress(p) {
  show("progress-wrap", true);
  $("progress").max = Math.max(p.total, 1);
  $("progress").value = p.labelled;
  $("progress-text").textContent = p.labelled + " / " + p.total + " labelled" + (p.skipped ? ", " + p.skipped + " skipped" : "");
}

function render(pair, previous) {
  current = pair;
  awaitingNext = false;
  show("reveal", false);
  show("label-form", true);
  $("message").textContent = "";
  show("done", !pair); show("pair", !!pair);
  if (!pair) return;
  $("pair-id").textContent = "#" + pair.pair_id;
  $("prompt").textContent = pair.prompt;
  $("answer-a").textContent = pair.answer_a;
  $("answer-b").textContent = pair.answer_b;
  ["prompt", "answer-a", "answer-b"].forEach((id) => { $(id).scrollTop = 0; });
  $("label-form").reset();
  if (previous) { // after an undo: the label that was withdrawn, ready to change
    const radio = document.querySelector('input[name="choice"][value="' + previous.choice + '"]');
    if (radio) radio.checked = true;
    previous.flags.forEach((f) => { const box = document.querySelector('input[name="flag"][value="' + f + '"]'); if (box) box.checked = true; });
    $("rationale").value = previous.rationale;
  }
}

async function nextPair() {
  const data = await api("GET", "/next");
  setProgress(data.progress);
  render(data.pair);
}

async function submitLabel() {
  if (!current || awaitingNext) return;
  const choice = document.querySelector('input[name="choice"]:checked');
  if (!choice) { $("message").textContent = "Choose A, B, tie or both unsafe first."; return; }
  const flags = [...document.querySelectorAll('input[name="flag"]:checked')].map((b) => b.value);
  try {
    const result = await api("POST", "/labels", {
      pair_id: current.pair_id, choice: choice.value, flags, rationale: $("rationale").value,
    });
    setProgress(result.progress);
    if (result.ai_verdict) { // shown only now that the human vote is stored
      const agrees = result.ai_verdict === result.choice;
      $("reveal-text").textContent = "Saved. The AI judge preferred answer " + result.ai_verdict +
        (agrees ? " (same as you)." : " (you chose " + result.choice.replace("_", " ") + ").");
      show("label-form", false); show("reveal", true);
      awaitingNext = true;
      $("next").focus();
    } else {
      await nextPair();
    }
  } catch (e) { if (e.message !== "401") $("message").textContent = e.message; }
}

async function skipPair() {
  if (!current || awaitingNext) return;
  try { await api("POST", "/pairs/" + current.pair_id + "/skip"); await nextPair(); }
  catch (e) { if (e.message !== "401") $("message").textContent = e.message; }
}

async function undoLast() {
  try {
    const result = await api("POST", "/undo");
    setProgress(result.progress);
    render(result.pair, result.undone);
    $("message").textContent = "Your last label was withdrawn; change it and submit again.";
  } catch (e) { if (e.message !== "401") $("message").textContent = e.message; }
}

async function loadAdmin() {
  const s = await api("GET", "/admin/stats");
  $("stats-summary").textContent = s.pairs + " pairs, " + s.labels + " of " + s.labels_needed + " labels (" +
    s.labels_per_pair + " per pair), " + s.pairs_complete + " pairs complete.";
  const body = $("stats-table").tBodies[0];
  body.replaceChildren();
  for (const a of s.annotators) {
    const row = body.insertRow();
    [a.name + (a.admin ? " (admin)" : ""), a.labelled, a.skipped, a.open, a.median_seconds ?? "–"]
      .forEach((v) => { row.insertCell().textContent = String(v); });
  }
  const fmt = (x) => (x === null || x === undefined ? "n/a" : x.toFixed(3));
  const items = ["Fleiss' kappa: " + fmt(s.agreement.fleiss.kappa) + " over " + s.agreement.fleiss.pairs + " pairs"];
  s.agreement.cohen.forEach((c) => items.push("Cohen's kappa " + c.annotators.join(" vs ") + ": " + fmt(c.kappa) +
    " (" + c.pairs + " shared pairs)"));
  if (s.judge) items.push("AI judge vs clinicians: " + fmt(s.judge.agreement) + " agreement on " +
    s.judge.decisive_labels + " decisive labels, kappa " + fmt(s.judge.kappa));
  $("agreement").replaceChildren(...items.map((t) => { const li = document.createElement("li"); li.textContent = t; return li; }));
}

async function saveGuidelines(event) {
  event.preventDefault();
  const axes = $("g-axes").value.split("\n").map((l) => l.trim()).filter(Boolean).map((line) => {
    const at = line.indexOf(":");
    return at > 0 ? { name: line.slice(0, at).trim(), text: line.slice(at + 1).trim() } : { name: line, text: line };
  });
  try {
    await api("PUT", "/guidelines", { preamble: $("g-preamble").value, axes });
    $("g-status").textContent = "saved";
    await loadGuidelines();
  } catch (e) { $("g-status").textContent = e.message; }
}

const KEYS = { "1": "A", "a": "A", "2": "B", "b": "B", "3": "tie", "t": "tie", "4": "both_unsafe", "x": "both_unsafe" };
const FLAG_KEYS = { "u": "unsafe", "h": "hallucination", "p": "phi", "o": "off_scope" };

function onKey(event) {
  if (!me || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  const typing = target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type !== "radio" && target.type !== "checkbox");
  if (typing) {
    if (event.key === "Escape") target.blur();
    return; // Enter in the rationale is a new line, letters are letters
  }
  if ($("work").hidden) return;
  const key = event.key.toLowerCase();
  if (event.key === "Enter") { event.preventDefault(); awaitingNext ? nextPair() : submitLabel(); return; }
  if (awaitingNext) return;
  if (key in KEYS && current) {
    document.querySelector('input[name="choice"][value="' + KEYS[key] + '"]').checked = true;
  } else if (key in FLAG_KEYS && current) {
    const box = document.querySelector('input[name="flag"][value="' + FLAG_KEYS[key] + '"]');
    box.checked = !box.checked;
  } else if (key === "r" && current) { event.preventDefault(); $("rationale").focus(); }
  else if (key === "s") skipPair();
  else if (key === "z") undoLast();
  else if (key === "g") $("guidelines").classList.toggle("collapsed");
  else return;
  event.preventDefault();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("token").value.trim()); });
  $("label-form").addEventListener("submit", (e) => { e.preventDefault(); submitLabel(); });
  $("skip").addEventListener("click", skipPair);
  $("undo").addEventListener("click", undoLast);
  $("next").addEventListener("click", nextPair);
  $("signout").addEventListener("click", () => signOut(""));
  $("admin-toggle").addEventListener("click", () => { const panel = $("admin"); panel.hidden = !panel.hidden; if (!panel.hidden) loadAdmin(); });
  $("guidelines-form").addEventListener("submit", saveGuidelines);
  document.addEventListener("keydown", onKey);
  if (token) signIn(token); else signOut("");
});
