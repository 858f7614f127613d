// The console's little script: live regions re-read on the workspace's event stream,
// and the Channels forms calling the Channels API. Plain JS, no build step.
"use strict";

(function () {
  const workspace = document.body.dataset.workspace;

  // --- Live regions ---------------------------------------------------------------------
  // <div data-live="fragment-url" [data-live-kinds="charge workspace" | "*"]
  //      [data-live-conversation="id"]> is re-read when a matching change is committed.
  // Every change is also dispatched on document as a "wassla:change" CustomEvent.

  function matches(region, change) {
    if (change.kind === "resync") return true;
    const conversation = region.dataset.liveConversation;
    if (conversation) return change.conversation === conversation;
    const kinds = (region.dataset.liveKinds || "*").split(/\s+/);
    return kinds.includes("*") || kinds.includes(change.kind);
  }

  function refresh(region) {
    if (region._busy) { region._again = true; return; }
    const playing = Array.from(region.querySelectorAll("audio")).find((a) => !a.paused);
    if (playing) {  // never cut a recording someone is listening to
      region._again = true;
      playing.addEventListener("pause", () => refresh(region), { once: true });
      return;
    }
    region._busy = true;
    fetch(region.dataset.live, { credentials: "same-origin", cache: "no-store" })
      .then((r) => (r.ok ? r.text() : Promise.reject(new Error(String(r.status)))))
      .then((html) => { region.innerHTML = html; region.dispatchEvent(new Event("wassla:refreshed", { bubbles: true })); })
      .catch(() => {})
      .finally(() => {
        region._busy = false;
        if (region._again) { region._again = false; refresh(region); }
      });
  }

  function listen() {
    const regions = Array.from(document.querySelectorAll("[data-live]"));
    if (!workspace || !window.EventSource) return;
    const source = new EventSource(`/console/w/${workspace}/events`);
    source.addEventListener("ready", () => {
      // Listening now: re-read, so nothing committed before the stream opened is missed.
      regions.forEach(refresh);
      document.documentElement.dataset.live = "ready";
      document.dispatchEvent(new CustomEvent("wassla:ready"));
    });
    source.addEventListener("change", (message) => {
      let change;
      try { change = JSON.parse(message.data); } catch { return; }
      regions.filter((r) => matches(r, change)).forEach(refresh);
      document.dispatchEvent(new CustomEvent("wassla:change", { detail: change }));
    });
    source.addEventListener("error", () => { document.documentElement.dataset.live = "reconnecting"; });
  }

  // --- Channels -------------------------------------------------------------------------

  function channelsPage() {
    const tiles = document.querySelector(".tiles[data-api]");
    if (!tiles) return;
    const api = tiles.dataset.api;
    const headers = { "Content-Type": "application/json", [tiles.dataset.header]: "1" };

    async function call(method, url, body) {
      const response = await fetch(url, {
        method, headers, credentials: "same-origin", body: body ? JSON.stringify(body) : undefined,
      });
      if (response.ok) return null;
      let detail = `The server answered ${response.status}.`;
      try {
        const data = await response.json();
        if (typeof data.detail === "string") detail = data.detail;
      } catch { /* not JSON: keep the status */ }
      return detail;
    }

    tiles.querySelectorAll("form.channel-form").forEach((form) => {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const error = form.querySelector(".error");
        const kind = form.closest(".tile").dataset.kind;
        const phone = form.elements.phone_number.value;
        const patch = form.dataset.method === "PATCH";
        const problem = patch
          ? await call("PATCH", `${api}/${form.dataset.channel}`, { phone_number: phone })
          : await call("POST", api, { kind, phone_number: phone });
        if (problem) {
          error.textContent = problem;
          error.hidden = false;
          form.elements.phone_number.setAttribute("aria-invalid", "true");
        } else {
          window.location.reload();
        }
      });
    });

    tiles.querySelectorAll("button.disconnect").forEach((button) => {
      button.addEventListener("click", async () => {
        if (!window.confirm(`Disconnect ${button.dataset.number}? Texts and calls to it will no longer reach your agent.`)) return;
        const problem = await call("DELETE", `${api}/${button.dataset.channel}`);
        if (problem) window.alert(problem); else window.location.reload();
      });
    });
  }

  // --- Copy buttons ---------------------------------------------------------------------

  function copyButtons() {
    document.querySelectorAll("button.copy[data-copy]").forEach((button) => {
      button.addEventListener("click", async () => {
        try {
          await navigator.clipboard.writeText(button.dataset.copy);
          button.textContent = "Copied";
        } catch {
          window.prompt("Copy the webhook URL:", button.dataset.copy);
        }
      });
    });
  }

  listen();
  channelsPage();
  copyButtons();
})();
