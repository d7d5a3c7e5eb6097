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
      // The visible word only: a hidden rest of the name ("… the new key") stays for screen readers.
      const word = [...button.childNodes].find(
        (n) => n.nodeType === 3 /* a text node */ && n.textContent.trim(),
      );
      if (word) word.textContent = "Copied";
      else button.textContent = "Copied";
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

// The live log: <pre data-live-log data-events="/api/operations/ID/events">. The stream replays
// the operation's output from its start, so the server-rendered output is replaced by it once the
// first event arrives (not before: if the stream cannot be opened, what the page showed stays).
// Output events are appended as they arrive, stderr marked apart; the status line follows; the
// stream is closed at its end (an EventSource would otherwise reconnect forever). After a network
// drop the browser reconnects by itself with Last-Event-ID and the service resumes after it; the
// output ids are also checked here, so nothing is ever appended twice.
// The service's events (spec §6): `status` {status, outcome}; `output` {stream, data} with the
// output's sequence number as id; `end` {outcome, reason, exit_code, …}; `error` {detail}.
function setUpLiveLog() {
  const log = document.querySelector("[data-live-log]");
  if (!log || !window.EventSource) return;
  const status = document.getElementById("op-status");
  const exit = document.getElementById("op-exit");
  const cancel = document.getElementById("cancel-form");
  const follow = document.getElementById("follow");
  // A finished operation's page already says how it ended; the stream's opening "running" is not news.
  const ended = log.hasAttribute("data-ended");
  let replaced = false;
  let lastOutput = 0;
  let finished = false;
  const source = new EventSource(log.dataset.events);
  const replace = () => {
    if (replaced) return;
    replaced = true;
    log.textContent = "";
  };
  const stick = () => {
    if (!follow || follow.checked) log.scrollTop = log.scrollHeight;
  };
  const note = (text) => {
    const span = document.createElement("span");
    span.className = "meta";
    span.textContent = text;
    log.appendChild(span);
    stick();
  };
  const showStatus = (value) => {
    if (!status || !value) return;
    status.textContent = value;
    status.className = `status status-${value}`;
  };
  source.addEventListener("status", (event) => {
    replace();
    const { status: published, outcome } = JSON.parse(event.data);
    const value = outcome ?? published;
    if (!(ended && value === "running")) showStatus(value);
  });
  source.addEventListener("output", (event) => {
    const seq = Number(event.lastEventId);
    if (Number.isFinite(seq) && seq > 0) {
      if (seq <= lastOutput) return;
      lastOutput = seq;
    }
    replace();
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
  source.addEventListener("end", (event) => {
    source.close();
    if (finished) return;
    finished = true;
    replace();
    const result = JSON.parse(event.data);
    const value = result.outcome ?? result.status;
    showStatus(value);
    const code = result.exit_code === null || result.exit_code === undefined ? null : result.exit_code;
    if (exit) exit.textContent = code === null ? "none" : String(code);
    if (cancel) cancel.hidden = true;
    note(`\n[${value}${code === null ? "" : `, exit code ${code}`}]\n`);
    if (!ended) announce(`The operation ended: ${value}.`);
  });
  source.addEventListener("error", (event) => {
    if (finished) return;
    // A named "error" event from the service carries data; the browser's own has none, and it
    // reconnects by itself unless the service refused the stream (the session ended, say).
    if (event.data) {
      source.close();
      const { detail } = JSON.parse(event.data);
      note(`\n[${detail ?? "the stream ended"}; reload to follow it again]\n`);
    } else if (source.readyState === EventSource.CLOSED) {
      note("\n[the live output could not be followed; reload the page to try again]\n");
    }
  });
}

// A refused form comes back with the error above it (role="alert", id="form-error") listing the
// fields it names (<li data-field="port">). Those fields of the page's forms are marked invalid and
// described by the error, so a screen reader says what is wrong when the field takes focus.
function markInvalidFields() {
  const error = document.getElementById("form-error");
  if (!error) return;
  for (const item of error.querySelectorAll("li[data-field]")) {
    const name = item.dataset.field.split(".")[0];
    for (const field of document.querySelectorAll("main form[method='post'] [name]")) {
      if (field.name !== name || field.type === "hidden") continue;
      field.setAttribute("aria-invalid", "true");
      const described = (field.getAttribute("aria-describedby") ?? "").split(" ").filter(Boolean);
      if (!described.includes("form-error"))
        field.setAttribute("aria-describedby", ["form-error", ...described].join(" "));
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  markInvalidFields();
  setUpCopyButtons();
  setUpConfirmations();
  setUpLiveLog();
});
