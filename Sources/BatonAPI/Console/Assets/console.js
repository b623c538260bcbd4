// Baton's console: times shown in the reader's zone, and live updates from the server's event stream (one connection per page, no polling). Every page
// works without it; it only makes them better.
"use strict";

function localTimes(root) {
  for (const node of root.querySelectorAll("time[datetime]")) {
    const date = new Date(node.getAttribute("datetime"));
    if (isNaN(date)) continue;
    node.textContent = date.toLocaleString();
    node.title = node.getAttribute("datetime").replace("T", " ").replace(/\.\d+Z$/, "Z") + " (UTC)";
  }
}

function announce(text) {
  const region = document.getElementById("live-announcer");
  if (region) region.textContent = text;
}

// A form someone is filling in is never replaced under their hands.
function isBeingEdited(region) {
  if (!region.hasAttribute("data-keep-while-editing")) return false;
  if (region.contains(document.activeElement) && document.activeElement !== document.body) return true;
  return [...region.querySelectorAll("textarea[name=reason]")].some((field) => field.value.trim() !== "");
}

let refreshing = false;
let again = false;

async function refresh() {
  if (refreshing) { again = true; return; }
  refreshing = true;
  try {
    const rows = document.querySelector("[data-rows-src]");
    const response = await fetch(rows ? rows.dataset.rowsSrc : window.location.href, { headers: { Accept: "text/html" } });
    if (!response.ok) return;
    const html = await response.text();
    if (rows) {
      const table = document.createElement("table");
      table.innerHTML = "<tbody>" + html + "</tbody>";
      rows.replaceChildren(...table.tBodies[0].childNodes);
      localTimes(rows);
    } else {
      const next = new DOMParser().parseFromString(html, "text/html");
      for (const region of document.querySelectorAll("[data-live][id]")) {
        const fresh = next.getElementById(region.id);
        if (!fresh || isBeingEdited(region)) continue;
        region.replaceWith(fresh);
        localTimes(fresh);
      }
      const status = document.getElementById("saga-status");
      if (status) announce("Saga status: " + status.dataset.status);
    }
  } finally {
    refreshing = false;
    if (again) { again = false; setTimeout(refresh, 500); }
  }
}

function listen() {
  const url = document.body.dataset.events;
  if (!url || !window.EventSource) return;
  const source = new EventSource(url);
  let timer = null;
  source.addEventListener("change", () => {
    // Bursts of changes make one refresh.
    if (timer) return;
    timer = setTimeout(() => { timer = null; refresh(); }, 300);
  });
  source.addEventListener("open", () => document.body.classList.add("live"));
  source.addEventListener("error", () => document.body.classList.remove("live"));
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  listen();
});
