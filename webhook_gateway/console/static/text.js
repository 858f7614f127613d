// Text your agent: a phone that texts the agent as a contact and shows the replies the
// contact's phone would receive. The thread is re-read when the workspace's live feed
// (console.js, "wassla:change") reports a message change; nothing polls.
"use strict";

(function () {
  const phone = document.getElementById("phone");
  if (!phone) return;
  const api = phone.dataset.api;
  const thread = document.getElementById("phone-thread");
  const error = document.getElementById("phone-error");
  const contact = document.getElementById("phone-contact");
  const number = document.getElementById("phone-number");
  const form = document.getElementById("phone-compose");
  const input = document.getElementById("phone-body");
  let reading = false;
  let again = false;

  function detailOf(data, status) {
    if (data && typeof data.detail === "string") return data.detail;
    if (data && Array.isArray(data.detail) && data.detail[0] && data.detail[0].msg) return data.detail[0].msg;
    return `The server answered ${status}.`;
  }

  function show(texts) {
    thread.replaceChildren(...texts.map((text) => {
      const bubble = document.createElement("li");
      bubble.className = `bubble ${text.direction}`;
      bubble.dataset.sid = text.sid;
      const body = document.createElement("span");
      body.className = "body";
      body.textContent = text.body;
      const time = document.createElement("time");
      time.dateTime = text.at;
      time.textContent = new Date(text.at).toLocaleTimeString();
      bubble.append(body, time);
      return bubble;
    }));
    thread.scrollTop = thread.scrollHeight;
  }

  async function read() {
    if (reading) { again = true; return; }
    reading = true;
    try {
      const query = new URLSearchParams({ channel_id: number.value, contact: contact.value.trim() });
      const answer = await fetch(`${api}/thread?${query}`, { credentials: "same-origin", cache: "no-store" });
      let data = null;
      try { data = await answer.json(); } catch { /* not JSON */ }
      if (!answer.ok) { error.textContent = detailOf(data, answer.status); return; }
      error.textContent = "";
      show(data.texts);
    } catch (failure) {
      error.textContent = `Could not read the thread: ${failure.message}`;
    } finally {
      reading = false;
      if (again) { again = false; read(); }
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = input.value;
    if (!body.trim()) return;
    form.querySelector("button").disabled = true;
    try {
      const answer = await fetch(`${api}/send`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", [phone.dataset.header]: "1" },
        body: JSON.stringify({ channel_id: number.value, contact: contact.value.trim(), body }),
      });
      let data = null;
      try { data = await answer.json(); } catch { /* not JSON */ }
      if (!answer.ok) { error.textContent = detailOf(data, answer.status); return; }
      error.textContent = "";
      input.value = "";
      read();
    } catch (failure) {
      error.textContent = `Could not send: ${failure.message}`;
    } finally {
      form.querySelector("button").disabled = false;
    }
  });

  document.addEventListener("wassla:change", (event) => {
    const kind = event.detail && event.detail.kind;
    if (kind === "message" || kind === "resync") read();
  });
  document.addEventListener("wassla:ready", read);  // listening: nothing is missed from here on
  contact.addEventListener("change", read);
  number.addEventListener("change", read);
  read();
})();
