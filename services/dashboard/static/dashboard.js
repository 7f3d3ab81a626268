/* ci-medic dashboard: draws /api/dashboard with Chart.js, keeps the audit trail and the pending
   approvals live, and sends approve/reject decisions. Every value is written with textContent,
   never parsed as HTML: log lines, branch and approver names come from strangers. */
(() => {
  "use strict";

  const REFRESH_MS = 5000;
  const TOKEN_KEY = "medic.apiToken";
  const APPROVER_KEY = "medic.approver";
  const COLORS = { ok: "#1f9d6b", bad: "#d64545", grey: "#a3acbd", info: "#3b6fd8", warn: "#d9892b" };
  const PALETTE = ["#3b6fd8", "#1f9d6b", "#d9892b", "#8e5bd6", "#d64545", "#2aa5b8", "#c2568f", "#7d8aa3",
    "#5f8f2f", "#b0702a", "#4a4fb8", "#2f8f86"];
  // risk 0..10, green to dark red
  const RISK = ["#1a8a5c", "#1f9d6b", "#5bb05a", "#9cc04a", "#d8c23a", "#e0a23a",
    "#e5862f", "#e0623a", "#d64545", "#b32f3a", "#8a1c2c"];

  const state = { charts: {}, figures: null, refreshes: 0, lastAuditId: null, decided: new Set() };
  window.medicDashboard = state; // read by the browser test and handy in the console
  document.documentElement.classList.replace("no-js", "js");

  const $ = (id) => document.getElementById(id);
  const pad = (n) => String(n).padStart(2, "0");

  function fmtTime(iso) {
    const d = new Date(iso);
    if (!iso || Number.isNaN(d.getTime())) return "—";
    return `${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  }
  function fmtSeconds(s) {
    if (s === null || s === undefined) return "—";
    if (s < 1) return `${Math.round(s * 1000)} ms`;
    if (s < 90) return `${s.toFixed(1)} s`;
    if (s < 5400) return `${(s / 60).toFixed(1)} min`;
    return `${(s / 3600).toFixed(1)} h`;
  }
  const fmtRate = (r) => (r === null || r === undefined ? "—" : `${Math.round(r * 100)} %`);

  function node(tag, text, className) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text === null ? "—" : String(text);
    if (className) e.className = className;
    return e;
  }
  function timeNode(iso) {
    if (!iso) return node("span", null);
    const t = node("time", fmtTime(iso));
    t.dateTime = iso;
    return t;
  }
  function row(cells) {
    const tr = document.createElement("tr");
    for (const c of cells) {
      const td = document.createElement("td");
      td.append(c instanceof Node ? c : node("span", c ?? null));
      tr.append(td);
    }
    return tr;
  }
  function fill(tbody, rows, emptyText) {
    if (!tbody) return;
    const columns = tbody.closest("table").tHead.rows[0].cells.length;
    if (!rows.length) {
      const tr = node("tr", undefined, "empty");
      const td = node("td", emptyText);
      td.colSpan = columns;
      tr.append(td);
      rows = [tr];
    }
    tbody.replaceChildren(...rows);
  }

  /* --- charts ---------------------------------------------------------------------------- */

  function upsert(key, canvasId, config) {
    const chart = state.charts[key];
    if (chart) {
      chart.data.labels = config.data.labels;
      config.data.datasets.forEach((ds, i) => Object.assign(chart.data.datasets[i], ds));
      chart.update("none");
    } else if ($(canvasId)) {
      state.charts[key] = new Chart($(canvasId), config);
    }
  }

  /* "17:00", with the date on the first hour and at each midnight */
  function hourLabel(iso, index) {
    const t = fmtTime(iso);
    return index === 0 || t.slice(6, 8) === "00" ? t.slice(0, 11) : t.slice(6, 11);
  }

  const BAR = { stack: "n", order: 1, maxBarThickness: 36, borderRadius: 2 };

  function drawCharts(f) {
    const hours = f.hourly;
    upsert("hourly", "chart-hourly", {
      type: "bar",
      data: {
        labels: hours.map((h, i) => hourLabel(h.hour, i)),
        datasets: [
          { label: "Remediated", data: hours.map((h) => h.remediated), backgroundColor: COLORS.ok, ...BAR },
          { label: "Fix failed", data: hours.map((h) => h.failed), backgroundColor: COLORS.bad, ...BAR },
          { label: "Other outcome", data: hours.map((h) => h.other), backgroundColor: COLORS.grey, ...BAR },
          {
            label: "Success rate %", type: "line", yAxisID: "rate", order: 0, clip: false, borderColor: COLORS.info,
            backgroundColor: COLORS.info, tension: 0.25, pointRadius: 4, spanGaps: true,
            data: hours.map((h) => (h.rate === null ? null : Math.round(h.rate * 1000) / 10)),
          },
        ],
      },
      options: {
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { stacked: true, grid: { display: false } },
          y: { stacked: true, beginAtZero: true, title: { display: true, text: "failures settled" }, ticks: { precision: 0 } },
          rate: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false }, title: { display: true, text: "success %" } },
        },
        plugins: { legend: { position: "bottom" } },
      },
    });
    upsert("categories", "chart-categories", {
      type: "bar",
      data: {
        labels: f.categories.map((s) => s.label),
        datasets: [{ label: "Failures", data: f.categories.map((s) => s.count),
          backgroundColor: f.categories.map((_, i) => PALETTE[i % PALETTE.length]), borderRadius: 4 }],
      },
      options: { indexAxis: "y", maintainAspectRatio: false, plugins: { legend: { display: false } },
        scales: { x: { beginAtZero: true, ticks: { precision: 0 } }, y: { grid: { display: false } } } },
    });
    upsert("risks", "chart-risks", {
      type: "doughnut",
      data: {
        labels: f.risks.map((s) => `risk ${s.label}`),
        datasets: [{ label: "Failures", data: f.risks.map((s) => s.count),
          backgroundColor: f.risks.map((s) => RISK[Math.min(Math.max(Number(s.label) || 0, 0), RISK.length - 1)]) }],
      },
      options: { maintainAspectRatio: false, cutout: "58%", plugins: { legend: { position: "right" } } },
    });
    upsert("resolution", "chart-resolution", {
      type: "bar",
      data: {
        labels: f.resolution.buckets.map((s) => s.label),
        datasets: [{ label: "Remediated failures", data: f.resolution.buckets.map((s) => s.count),
          backgroundColor: COLORS.info, borderRadius: 4 }],
      },
      options: { maintainAspectRatio: false, plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, x: { grid: { display: false } } } },
    });
  }

  /* --- tables and figures ---------------------------------------------------------------- */

  function setKpi(key, text) {
    const value = document.querySelector(`#kpi-${key} .kpi-value`);
    if (value) value.textContent = text;
  }

  function drawKpis(f) {
    setKpi("total", f.total_failures ?? "—");
    setKpi("rate", fmtRate(f.success_rate));
    setKpi("p50", fmtSeconds(f.resolution.p50));
    setKpi("p90", fmtSeconds(f.resolution.p90));
    setKpi("pending", f.by_state.awaiting_approval ?? 0);
    setKpi("failed", f.by_state.remediation_failed ?? 0);
    $("resolution-note").textContent =
      `remediated failures · p50 ${fmtSeconds(f.resolution.p50)} · p90 ${fmtSeconds(f.resolution.p90)}`;
    const updated = $("updated");
    updated.dateTime = f.generated_at;
    updated.textContent = `${fmtTime(f.generated_at)} UTC`;
  }

  function failureLink(id) {
    if (!id) return node("span", null);
    const a = node("a", String(id).slice(0, 8));
    a.href = `api/failures/${encodeURIComponent(id)}`;
    a.title = id;
    return a;
  }

  function drawAudit(rows) {
    if (!rows) return;
    const previous = state.lastAuditId;
    fill($("audit-body"), rows.map((r) => {
      const tr = row([timeNode(r.occurred_at), r.action, r.outcome, r.actor, r.repository,
        failureLink(r.failure_id), node("code", r.details)]);
      if (previous !== null && r.id > previous) tr.className = "fresh";
      return tr;
    }), "No events yet.");
    if (rows.length) state.lastAuditId = Math.max(...rows.map((r) => r.id));
  }

  function drawFailures(rows) {
    if (!rows) return;
    fill($("failures-body"), rows.map((r) => row([timeNode(r.first_seen_at), r.repository, r.branch,
      r.workflow_name, r.category, r.risk, node("span", r.state, `state state-${r.state}`)])), "No failures yet.");
  }

  function drawApprovals(rows) {
    if (!rows) return;
    const pending = rows.filter((a) => !state.decided.has(a.approval_id));
    fill($("approvals-body"), pending.map((a) => {
      const buttons = document.createElement("span");
      for (const [decision, label] of [["approve", "Approve"], ["reject", "Reject"]]) {
        const b = node("button", label, decision);
        b.type = "button";
        b.dataset.decision = decision;
        buttons.append(b);
      }
      const tr = row([timeNode(a.requested_at), a.repository, a.branch, a.workflow, a.category,
        node("code", a.action), a.reasons.join("; ") || null, timeNode(a.expires_at), buttons]);
      tr.dataset.approvalId = a.approval_id;
      return tr;
    }), "Nothing waits for a decision.");
    $("approvals-count").textContent = String(pending.length);
  }

  async function refresh() {
    try {
      const response = await fetch("api/dashboard", { cache: "no-store", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const f = await response.json();
      state.figures = f;
      drawKpis(f);
      if (typeof Chart !== "undefined") drawCharts(f);
      drawAudit(f.audit);
      drawApprovals(f.approvals);
      drawFailures(f.recent_failures);
      state.refreshes += 1;
      $("live").hidden = false;
      $("live").textContent = "· live";
    } catch (err) {
      $("live").hidden = false;
      $("live").textContent = `· offline (${err.message})`;
    } finally {
      setTimeout(refresh, REFRESH_MS);
    }
  }

  /* --- decisions ------------------------------------------------------------------------- */

  function say(text, isError) {
    const m = $("approval-message");
    m.textContent = text;
    m.className = `message ${isError ? "error" : "ok"}`;
  }

  async function errorDetail(response) {
    try {
      const body = await response.json();
      if (typeof body.detail === "string") return body.detail;
      if (Array.isArray(body.detail)) {
        return body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
      }
      return JSON.stringify(body);
    } catch {
      return response.statusText || "no details";
    }
  }

  async function decide(button) {
    const tr = button.closest("tr");
    const id = tr.dataset.approvalId;
    const decision = button.dataset.decision;
    const approver = $("approver").value.trim();
    if (!approver) {
      say("Enter your name first: it is recorded with the decision.", true);
      $("approver").focus();
      return;
    }
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    const token = $("token").value.trim();
    if (token) headers.Authorization = `Bearer ${token}`;
    const buttons = tr.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    let response;
    try {
      response = await fetch(`api/approvals/${encodeURIComponent(id)}/${decision}`, {
        method: "POST", headers, body: JSON.stringify({ approver, comment: $("comment").value }),
      });
    } catch (err) {
      say(`Could not reach the server: ${err.message}`, true);
      buttons.forEach((b) => { b.disabled = false; });
      return;
    }
    if (response.ok) {
      const record = await response.json();
      const verb = decision === "approve" ? "Approved" : "Rejected";
      say(`${verb} ${record.action.kind} on ${record.repository} (run ${record.run_id}) as ${record.decided_by}.`, false);
    } else {
      say(`${response.status}: ${await errorDetail(response)}`, true);
      if (response.status !== 404 && response.status !== 409) {
        buttons.forEach((b) => { b.disabled = false; });
        return;
      }
    }
    state.decided.add(id); // decided (now or by someone else): it is no longer ours to decide
    tr.classList.add("decided");
    setTimeout(() => { tr.remove(); $("approvals-count").textContent = String($("approvals-body").querySelectorAll("tr[data-approval-id]").length); }, 500);
  }

  function wireControls() {
    for (const [id, key] of [["token", TOKEN_KEY], ["approver", APPROVER_KEY]]) {
      const input = $(id);
      input.value = sessionStorage.getItem(key) || "";
      input.addEventListener("input", () => sessionStorage.setItem(key, input.value));
    }
    $("decider").addEventListener("submit", (e) => e.preventDefault());
    $("approvals-body")?.addEventListener("click", (e) => {
      const button = e.target.closest("button[data-decision]");
      if (button) decide(button);
    });
  }

  function start() {
    if (typeof Chart !== "undefined") {
      Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
      Chart.defaults.color = "#647089";
      Chart.defaults.animation.duration = 350;
    }
    wireControls();
    refresh();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
