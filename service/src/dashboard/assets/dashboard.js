// The dashboard's progressive enhancement: every page works without it (forms post, links go),
// and this adds what needs a script: copy buttons, confirmations before a revoke or a cancel, and
// the live log of a running operation. Served by the service itself (Content-Security-Policy
// script-src 'self'); no inline script anywhere.
"use strict";

/** Announces a sentence to screen readers in the page's status region. */
function announce(message) {
  let region = document.getElementById("announcer");
  if (!region) {
    region = document.createElement("div");
    region.id = "announcer";
    region.className = "visually-hidden";
    region.setAttribute("role", "status");
    document.body.appendChild(region);
  }
  region.textContent = "";
  setTimeout(() => (region.textContent = message), 50);
}

// Copy buttons: <button data-copy="id-of-input">. The clipboard API, or selection as a fallback.
function setUpCopyButtons() {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const field = document.getElementById(button.dataset.copy);
      if (!field) return;
      try {
        await navigator.clipboard.writeText(field.value ?? field.textContent);
      } catch {
        field.select?.();
        document.execCommand("copy");
      }
      button.textContent = "Copied";
      announce("Copied to the clipboard.");
    });
  }
}

// Forms that change something for good ask first: <form data-confirm="Revoke this key?">.
function setUpConfirmations() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

// The live log: <pre data-live-log data-events="/api/operations/ID/events">. Output events are
// appended as they arrive, stderr marked apart; the status line follows; the stream is closed at
// its end (an EventSource would otherwise reconnect forever).
function setUpLiveLog() {
  const log = document.querySelector("[data-live-log]");
  if (!log || !window.EventSource) return;
  const status = document.getElementById("op-status");
  const exit = document.getElementById("op-exit");
  const cancel = document.getElementById("cancel-form");
  const follow = document.getElementById("follow");
  log.textContent = "";
  const source = new EventSource(log.dataset.events);
  const stick = () => {
    if (!follow || follow.checked) log.scrollTop = log.scrollHeight;
  };
  source.addEventListener("output", (event) => {
    const { stream, data } = JSON.parse(event.data);
    const last = log.lastElementChild;
    if (last && last.dataset.stream === stream) last.append(data);
    else {
      const span = document.createElement("span");
      span.className = stream;
      span.dataset.stream = stream;
      span.textContent = data;
      log.appendChild(span);
    }
    stick();
  });
  source.addEventListener("status", (event) => {
    const { status: value } = JSON.parse(event.data);
    if (status && value) {
      status.textContent = value;
      status.className = `status status-${value}`;
    }
  });
  source.addEventListener("end", (event) => {
    source.close();
    const result = JSON.parse(event.data);
    if (status) {
      status.textContent = result.status;
      status.className = `status status-${result.status}`;
    }
    if (exit)
      exit.textContent =
        result.exit_code === null || result.exit_code === undefined ? "none" : String(result.exit_code);
    if (cancel) cancel.hidden = true;
    const done = document.createElement("span");
    done.className = "meta";
    done.textContent = `\n[${result.status}${result.exit_code === null || result.exit_code === undefined ? "" : `, exit code ${result.exit_code}`}]\n`;
    log.appendChild(done);
    stick();
    announce(`The operation ended: ${result.status}.`);
  });
  source.addEventListener("error", (event) => {
    // A named "error" event from the service carries data; the browser's own has none.
    if (event.data) {
      source.close();
      const { detail } = JSON.parse(event.data);
      const note = document.createElement("span");
      note.className = "meta";
      note.textContent = `\n[${detail ?? "the stream ended"}; reload to follow it again]\n`;
      log.appendChild(note);
    }
  });
  log.setAttribute("aria-busy", "false");
}

document.addEventListener("DOMContentLoaded", () => {
  setUpCopyButtons();
  setUpConfirmations();
  setUpLiveLog();
});
