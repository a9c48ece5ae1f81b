/* sentrail dashboard: small, first-party, no dependencies, no eval, no inline handlers.
   Loaded with `defer` from the page's own origin (Content-Security-Policy: script-src 'self'). */
"use strict";
(function () {
  const PIN = "sentrail.verifierKey";

  /* Open the step a link points at (#step-N): from the timeline bars, the feed, a URL. */
  function openFromHash() {
    const m = /^#step-(\d+)$/.exec(location.hash);
    if (!m) return;
    const el = document.getElementById("step-" + m[1]);
    if (el && el.tagName === "DETAILS") {
      el.open = true;
      const summary = el.querySelector("summary");
      if (summary) summary.focus({ preventScroll: false });
    }
  }
  window.addEventListener("hashchange", openFromHash);

  /* Left/right arrows move between timeline bars; Enter follows the focused bar's link. */
  function timelineKeys(ev) {
    const link = ev.target.closest && ev.target.closest(".bar-link");
    if (!link) return;
    const bars = Array.from(document.querySelectorAll(".timeline .bar-link"));
    const i = bars.indexOf(link);
    let next = null;
    if (ev.key === "ArrowRight") next = bars[Math.min(i + 1, bars.length - 1)];
    if (ev.key === "ArrowLeft") next = bars[Math.max(i - 1, 0)];
    if (ev.key === "Home") next = bars[0];
    if (ev.key === "End") next = bars[bars.length - 1];
    if (next) { ev.preventDefault(); next.focus(); }
  }
  document.addEventListener("keydown", timelineKeys);

  /* A fragment rendered (and escaped) by the server, parsed inert: a <template>'s content
     runs no script, and the page's CSP forbids inline script anyway. */
  function fragment(html) {
    const t = document.createElement("template");
    t.innerHTML = html;
    return t.content;
  }

  function live() {
    const feed = document.querySelector("#feed[data-live-src]");
    if (feed) {
      const es = new EventSource(feed.getAttribute("data-live-src"));
      es.addEventListener("finding", function (ev) {
        const empty = feed.querySelector(".empty");
        if (empty) empty.remove();
        const frag = fragment(ev.data);
        const item = frag.firstElementChild;
        if (item) item.classList.add("fresh");
        feed.prepend(frag);
        const state = document.getElementById("live-state");
        if (state) state.textContent = "● live: a new finding arrived " + new Date().toLocaleTimeString();
      });
    }
    const section = document.querySelector("#timeline-section[data-live-src]");
    if (section) {
      const es = new EventSource(section.getAttribute("data-live-src"));
      const steps = document.getElementById("steps");
      es.addEventListener("step", function (ev) {
        const frag = fragment(ev.data);
        const details = frag.querySelector("details[id]");
        if (details) {
          const old = document.getElementById(details.id);
          if (old) old.closest("li").remove();
        }
        steps.appendChild(frag);
      });
      es.addEventListener("timeline", function (ev) {
        const holder = document.getElementById("timeline-svg");
        holder.replaceChildren(fragment(ev.data));
      });
      es.addEventListener("status", function (ev) {
        const state = document.getElementById("live-state");
        if (state) state.textContent = "● live: " + steps.children.length + " steps, run " + ev.data.replace("_", " ");
        if (ev.data !== "running") es.close();
      });
    }
  }

  function pinForm() {
    const form = document.getElementById("pin-form");
    if (!form) return;
    const input = document.getElementById("pinned-key");
    const status = document.getElementById("pin-status");
    input.value = localStorage.getItem(PIN) || "";
    status.textContent = input.value ? "A key is pinned in this browser." : "No key is pinned: provenance badges cannot verify.";
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      const value = input.value.trim();
      if (!/^[^\s+]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$/.test(value)) {
        status.textContent = "That is not a verifier key (name+8 hex digits+base64).";
        return;
      }
      localStorage.setItem(PIN, value);
      status.textContent = "Pinned. Provenance badges now verify against this key.";
    });
    document.getElementById("unpin").addEventListener("click", function () {
      localStorage.removeItem(PIN);
      input.value = "";
      status.textContent = "No key is pinned: provenance badges cannot verify.";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    openFromHash();
    live();
    pinForm();
  });
})();
