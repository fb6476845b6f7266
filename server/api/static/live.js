// Live unit page: polls the JSON API (same-origin, session cookie) and redraws. No external code.
// Texts come translated from the page (data-t-* attributes), so this file has no language of its own.
(function () {
  const script = document.currentScript;
  const unit = script.dataset.unit;
  const locale = script.dataset.locale || "vi-VN";
  const t = (key, values) => Object.entries(values || {}).reduce(
    (text, [k, v]) => text.replace("{" + k + "}", v), script.dataset["t" + key[0].toUpperCase() + key.slice(1)] || key);
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const hhmm = (iso) => new Date(iso).toLocaleTimeString(locale, {hour: "2-digit", minute: "2-digit", second: "2-digit"});

  function label(r, labels) {
    if (r.levels === labels.length) return labels[r.rating - 1];
    return r.rating + "/" + r.levels;
  }

  function draw(data) {
    $("unit-name").textContent = data.unit.name;
    $("counters").innerHTML = data.counters.map((c) => {
      const online = c.devices.some((d) => d.online);
      const who = c.official
        ? `<strong>${esc(c.official.name)}</strong><br><span class="muted">${esc(c.official.post)}</span>`
        : `<span class="muted">${esc(t("nobody"))}</span>`;
      return `<article class="card counter" data-counter="${esc(c.code)}">
        <h3><span class="dot ${online ? "on" : ""}" title="${esc(online ? t("online") : t("offline"))}"></span> ${esc(c.name)}</h3>
        <p>${who}</p><p class="muted">${esc(t("today", {n: c.ratings_today, c: c.counted_today}))}</p></article>`;
    }).join("");
    $("feed").innerHTML = data.latest.map((r) => {
      const cls = r.rating === 1 ? "r1" : r.rating === r.levels ? "rtop" : "";
      const note = r.misuse ? t("misuse") : r.status !== "accepted" ? t("waiting") : "";
      return `<tr><td>${hhmm(r.time)}</td><td>${esc(r.counter)}</td><td>${esc(r.official || "—")}</td>
        <td class="${cls}">${esc(label(r, data.labels))}</td><td class="muted">${esc(note)}</td></tr>`;
    }).join("");
    $("updated").textContent = t("at", {time: new Date().toLocaleTimeString(locale)});
  }

  async function tick() {
    try {
      const res = await fetch(`/api/v1/units/${encodeURIComponent(unit)}/live`, {credentials: "same-origin"});
      if (res.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
      if (res.ok) draw(await res.json());
      else $("updated").textContent = t("error", {status: res.status});
    } catch (e) {
      $("updated").textContent = t("lost");
    }
  }
  tick();
  setInterval(tick, 2000);
})();
