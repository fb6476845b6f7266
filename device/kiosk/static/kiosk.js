// The kiosk screen: faces -> (reasons, complaint) -> thank-you -> back. Talks only to the local kiosk process.
"use strict";
const $ = (id) => document.getElementById(id);
let state = null;
let chosen = null;      // the face tapped, while reasons are being chosen
let resetTimer = null;
let signinMethod = "pin";
const REASONS_TIMEOUT_MS = 20000;  // a citizen who walks away still has their rating sent

async function api(path, body) {
  const res = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  if (!res.ok) throw new Error(path + ": " + res.status);
  return res.json();
}

function show(name) {
  document.querySelectorAll(".screen").forEach((s) => s.classList.toggle("active", s.id === "screen-" + name));
}

// Faces from frowning to smiling; the curve of the mouth follows the position on the scale.
function faceSvg(i, levels) {
  const t = levels === 1 ? 1 : i / (levels - 1);
  const colours = ["#e53935", "#fb8c00", "#fdd835", "#7cb342", "#2e7d32"];
  const colour = colours[Math.round(t * (colours.length - 1))];
  const bend = Math.round((t - 0.5) * 40);
  return `<svg viewBox="0 0 100 100" aria-hidden="true"><circle cx="50" cy="50" r="46" fill="${colour}"/>` +
    `<circle cx="34" cy="40" r="7" fill="#000"/><circle cx="66" cy="40" r="7" fill="#000"/>` +
    `<path d="M28 ${70 - bend / 2} Q50 ${70 + bend} 72 ${70 - bend / 2}" stroke="#000" stroke-width="7" fill="none" stroke-linecap="round"/></svg>`;
}

function renderFaces() {
  const box = $("faces");
  const key = state.levels + "|" + state.labels.join("|");
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.innerHTML = "";
  for (let v = 1; v <= state.levels; v++) {
    const b = document.createElement("button");
    b.className = "face";
    b.dataset.value = String(v);
    b.innerHTML = faceSvg(v - 1, state.levels) + `<span>${state.labels[v - 1] || v}</span>`;
    b.addEventListener("click", () => tapped(v));
    box.appendChild(b);
  }
}

function renderOfficial() {
  const o = state.official;
  $("official-name").textContent = o ? o.name : "Chưa có cán bộ đăng nhập";
  $("official-post").textContent = o ? o.post : "";
  $("counter").textContent = state.counter ? state.counter.name : "";
  const photo = $("photo");
  const initials = o ? o.name.split(" ").slice(-1)[0].slice(0, 1) : "?";
  photo.textContent = initials;
  // A photo on the server may be unreachable offline: the initial stays underneath.
  photo.style.backgroundImage = o && o.photo ? `url("${o.photo}")` : "none";
  if (o && o.photo) photo.textContent = "";
  $("link").textContent = (state.online ? "● Trực tuyến" : "○ Ngoại tuyến") +
    (state.pending ? ` · ${state.pending} chờ gửi` : "") + (state.camera === "ok" ? "" : " · camera lỗi");
}

async function refresh() {
  try {
    state = await api("/api/state");
    renderFaces();
    renderOfficial();
    renderSignin();
  } catch (e) { $("link").textContent = "○ Mất kết nối với thiết bị"; }
}

function negative(v) { return v <= Math.floor(state.levels / 2); }

async function tapped(v) {
  if (negative(v)) {
    chosen = v;
    renderChips();
    show("reasons");
    clearTimeout(resetTimer);
    resetTimer = setTimeout(() => submit(false), REASONS_TIMEOUT_MS);
    return;
  }
  await api("/api/rating", {value: v, reasons: []});
  thanks("");
}

function renderChips() {
  const box = $("chips");
  box.innerHTML = "";
  for (const r of state.reasons) {
    const c = document.createElement("button");
    c.className = "chip";
    c.dataset.code = r.code;
    c.textContent = r.label;
    c.addEventListener("click", () => c.classList.toggle("on"));
    box.appendChild(c);
  }
}

async function submit(complain) {
  clearTimeout(resetTimer);
  if (chosen === null) return;
  const reasons = [...document.querySelectorAll(".chip.on")].map((c) => c.dataset.code);
  const value = chosen;
  chosen = null;
  const rated = await api("/api/rating", {value, reasons});
  if (complain) {
    await api("/api/complaint", {ref: [rated.ep, rated.seq]});
    thanks("Phản ánh của ông/bà đã được ghi nhận và sẽ được xem xét.");
  } else {
    thanks("");
  }
}

function thanks(note) {
  $("thanks-note").textContent = note;
  show("thanks");
  clearTimeout(resetTimer);
  resetTimer = setTimeout(() => show("rate"), state ? state.thanks_ms : 3000);
}

// --- officials ---
function renderSignin() {
  const s = state.signin;
  const text = {pending: "Đang chờ máy chủ xác nhận…", ok: s.action === "in" ? "Đăng nhập thành công." :
    "Đã đăng xuất.", refused: "Không thành công: sai mã cán bộ hoặc mã PIN/thẻ.", idle: ""}[s.state];
  $("si-status").textContent = text || "";
}

function method(m) {
  signinMethod = m;
  $("si-pin").classList.toggle("on", m === "pin");
  $("si-badge").classList.toggle("on", m === "badge");
  $("si-secret-label").firstChild.textContent = m === "pin" ? "Mã PIN " : "Mã thẻ ";
  $("si-secret").focus();
}

async function signin(action) {
  const official = $("si-official").value.trim();
  const secret = $("si-secret").value;
  $("si-secret").value = "";
  if (!official || secret.length < 4) { $("si-status").textContent = "Nhập mã cán bộ và mã PIN (ít nhất 4 số)."; return; }
  await api("/api/session", {action, official, method: signinMethod, secret});
  await refresh();
}

$("send").addEventListener("click", () => submit(false));
$("complain").addEventListener("click", () => submit(true));
$("staff").addEventListener("click", () => { show("signin"); $("si-official").focus(); });
$("si-cancel").addEventListener("click", () => show("rate"));
$("si-in").addEventListener("click", () => signin("in"));
$("si-out").addEventListener("click", () => signin("out"));
$("si-pin").addEventListener("click", () => method("pin"));
$("si-badge").addEventListener("click", () => method("badge"));
refresh();
setInterval(refresh, 1000);
