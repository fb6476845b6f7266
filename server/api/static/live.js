// Live unit page: polls the JSON API (same-origin, session cookie) and redraws. No external code.
(function () {
  const unit = document.currentScript.dataset.unit;
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const hhmm = (iso) => new Date(iso).toLocaleTimeString("vi-VN", {hour: "2-digit", minute: "2-digit", second: "2-digit"});

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
        : `<span class="muted">Chưa có cán bộ đăng nhập</span>`;
      return `<article class="card counter" data-counter="${esc(c.code)}">
        <h3><span class="dot ${online ? "on" : ""}" title="${online ? "Thiết bị trực tuyến" : "Thiết bị mất kết nối"}"></span> ${esc(c.name)}</h3>
        <p>${who}</p><p class="muted">Hôm nay: ${c.ratings_today} lượt (${c.counted_today} hợp lệ)</p></article>`;
    }).join("");
    $("feed").innerHTML = data.latest.map((r) => {
      const cls = r.rating === 1 ? "r1" : r.rating === r.levels ? "rtop" : "";
      const note = r.misuse ? "Bấm liên tục (không tính)" : r.status !== "accepted" ? "Chờ xác định cán bộ" : "";
      return `<tr><td>${hhmm(r.time)}</td><td>${esc(r.counter)}</td><td>${esc(r.official || "—")}</td>
        <td class="${cls}">${esc(label(r, data.labels))}</td><td class="muted">${note}</td></tr>`;
    }).join("");
    $("updated").textContent = "lúc " + new Date().toLocaleTimeString("vi-VN");
  }

  async function tick() {
    try {
      const res = await fetch(`/api/v1/units/${encodeURIComponent(unit)}/live`, {credentials: "same-origin"});
      if (res.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
      if (res.ok) draw(await res.json());
      else $("updated").textContent = "lỗi " + res.status;
    } catch (e) {
      $("updated").textContent = "mất kết nối tới máy chủ, đang thử lại…";
    }
  }
  tick();
  setInterval(tick, 2000);
})();
