// Talk to your agent: join a LiveKit room with the microphone, hear the agent, and show the
// live transcript the agent streams back (LiveKit text streams on "lk.transcription").
// LiveKit's client is the pinned bundle the gateway serves; no build step, no CDN.
import { Room, RoomEvent, Track } from "/console/vendor/livekit-client.esm.mjs";

const section = document.getElementById("talk");
const startButton = document.getElementById("talk-start");
const stopButton = document.getElementById("talk-stop");
const statusLine = document.getElementById("talk-status");
const agentSelect = document.getElementById("talk-agent");
const level = document.getElementById("talk-agent-level");
const agentState = document.getElementById("talk-agent-state");
const audioBox = document.getElementById("talk-audio");
const transcript = document.getElementById("talk-transcript");

const HEARD_LEVEL = 0.05; // inbound audio level (0..1) above which the agent is audible
let room = null;
let meterTimer = null;
const lines = new Map(); // transcription segment id -> its <li>

function say(text) { statusLine.textContent = text; }

function lineFor(segment, who) {
  let line = lines.get(segment);
  if (!line) {
    line = document.createElement("li");
    line.className = `turn ${who === "you" ? "caller" : "agent"}`;
    line.dataset.segment = segment;
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = who === "you" ? "You" : "Agent";
    const body = document.createElement("span");
    body.className = "body";
    line.append(name, body);
    transcript.append(line);
    lines.set(segment, line);
  }
  return line;
}

// One stream carries a segment's text so far (the agent's in pieces as it speaks, the
// caller's whole once transcribed); a later stream of the same segment replaces it.
async function onTranscription(reader, participantInfo) {
  const attributes = reader.info.attributes || {};
  const segment = attributes["lk.segment_id"] || reader.info.id;
  const who = participantInfo.identity === room.localParticipant.identity ? "you" : "agent";
  const line = lineFor(segment, who);
  const body = line.querySelector(".body");
  let text = "";
  for await (const chunk of reader) {
    text += chunk;
    body.textContent = text;
  }
  if (attributes["lk.transcription_final"] === "true") line.dataset.final = "true";
}

// How loud the agent's audio arrives: WebRTC's own inbound level, read every 200 ms over
// every audio track the agent publishes (its voice, and a filler track while it thinks).
const agentTracks = new Set();

async function loudest() {
  let value = 0;
  for (const track of agentTracks) {
    const report = await track.getRTCStatsReport();
    if (!report) continue;
    report.forEach((stat) => {
      if (stat.type === "inbound-rtp" && stat.kind === "audio") value = Math.max(value, stat.audioLevel || 0);
    });
  }
  return value;
}

function meter(track) {
  agentTracks.add(track);
  if (meterTimer) return;
  meterTimer = setInterval(async () => {
    const value = await loudest();
    level.value = value;
    if (value >= HEARD_LEVEL && section.dataset.agentHeard !== "true") {
      section.dataset.agentHeard = "true";
      say("Connected: the agent is speaking.");
    }
  }, 200);
}

async function start() {
  startButton.disabled = true;
  say("Starting a session…");
  try {
    const answer = await fetch(section.dataset.session, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", [section.dataset.header]: "1" },
      body: JSON.stringify({ agent_id: agentSelect.value }),
    });
    if (!answer.ok) {
      let detail = `The server answered ${answer.status}.`;
      try { const data = await answer.json(); if (typeof data.detail === "string") detail = data.detail; } catch { /* keep */ }
      throw new Error(detail);
    }
    const session = await answer.json();
    room = new Room({ adaptiveStream: false, dynacast: false });
    room.registerTextStreamHandler("lk.transcription", (reader, info) => {
      onTranscription(reader, info).catch(() => {});
    });
    room.on(RoomEvent.TrackSubscribed, (track) => {
      if (track.kind !== Track.Kind.Audio) return;
      audioBox.append(track.attach());
      meter(track);
    });
    room.on(RoomEvent.TrackUnsubscribed, (track) => {
      agentTracks.delete(track);
      track.detach().forEach((element) => element.remove());
    });
    room.on(RoomEvent.ParticipantConnected, (participant) => {
      if (participant.isAgent) say(`Connected: ${session.agent} joined.`);
    });
    room.on(RoomEvent.ParticipantAttributesChanged, (changed, participant) => {
      if (participant.isAgent && changed["lk.agent.state"]) agentState.textContent = changed["lk.agent.state"];
    });
    room.on(RoomEvent.Disconnected, () => stopped("The call ended."));
    await room.connect(session.url, session.token);
    await room.localParticipant.setMicrophoneEnabled(true);
    section.dataset.room = session.room;
    section.dataset.connected = "true";
    say("Connected: waiting for the agent…");
    stopButton.hidden = false;
  } catch (error) {
    say(`Could not start the call: ${error.message}`);
    if (room) { room.disconnect(); room = null; }
    startButton.disabled = false;
  }
}

function stopped(message) {
  clearInterval(meterTimer);
  meterTimer = null;
  agentTracks.clear();
  level.value = 0;
  agentState.textContent = "";
  section.dataset.connected = "false";
  stopButton.hidden = true;
  startButton.disabled = false;
  audioBox.replaceChildren();
  room = null;
  say(message);
}

startButton.addEventListener("click", start);
startButton.disabled = false;  // enabled once this module (and LiveKit's client) has loaded
stopButton.addEventListener("click", () => { if (room) room.disconnect(); });
window.addEventListener("pagehide", () => { if (room) room.disconnect(); });
