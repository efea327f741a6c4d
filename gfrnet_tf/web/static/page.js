// The page's behaviour: uploads one file per request, polls /api/state while work runs,
// and draws what the server decided. Text from the server or the user is only ever set
// with textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let polling = null;
let uploading = false;

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function fileUrl(id, download = false) {
  return `/api/files/${encodeURIComponent(id)}${download ? "?download=1" : ""}`;
}

function say(text, ok = false) {
  $("messages").append(element("li", { text, className: ok ? "ok" : "" }));
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  let body = {};
  try { body = await response.json(); } catch (error) { body = {}; }
  if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
  return body;
}

// ---- uploads ----------------------------------------------------------------------------

async function uploadFiles(files, person = "") {
  if (!files.length) return;
  uploading = true;
  $("messages").replaceChildren();
  let index = 0;
  for (const file of files) {
    index += 1;
    showProgress(`Adding ${file.name} (${index} of ${files.length})`, index - 1, files.length);
    const form = new FormData();
    form.append("file", file, file.name);
    if (person) form.append("person", person);
    try {
      const answer = await api("/api/upload", { method: "POST", body: form });
      for (const refused of answer.refused) say(`${refused.name} was not added: ${refused.problem}`);
    } catch (error) {
      say(`${file.name} was not added: ${error.message}`);
    }
  }
  uploading = false;
  $("progress").hidden = true;
  await refresh();
}

async function droppedFiles(items) {
  // Folders dropped on the page: walk them (Chromium, Firefox and Safari all offer entries).
  const files = [];
  async function walk(entry) {
    if (entry.isFile) {
      files.push(await new Promise((resolve, reject) => entry.file(resolve, reject)));
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      let batch;
      do {
        batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        for (const child of batch) await walk(child);
      } while (batch.length);
    }
  }
  const entries = [...items].map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry());
  for (const entry of entries) if (entry) await walk(entry);
  return files;
}

function setUpUploads() {
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const files = await droppedFiles(event.dataTransfer.items);
    await uploadFiles(files.length ? files : [...event.dataTransfer.files]);
  });
  for (const id of ["photo-files", "photo-folder"]) {
    $(id).addEventListener("change", async (event) => {
      await uploadFiles([...event.target.files]);
      event.target.value = "";
    });
  }
  $("guide-files").addEventListener("click", (event) => {
    if (!$("person-name").value.trim()) {
      event.preventDefault();
      $("messages").replaceChildren();
      say("Type the person's name first, then choose their photos.");
      $("person-name").focus();
    }
  });
  $("guide-files").addEventListener("change", async (event) => {
    await uploadFiles([...event.target.files], $("person-name").value.trim());
    event.target.value = "";
  });
}

// ---- work -------------------------------------------------------------------------------

async function startRestore() {
  $("messages").replaceChildren();
  try {
    await api("/api/restore", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ restore_all: $("restore-all").checked }),
    });
  } catch (error) {
    say(error.message);
  }
  await refresh();
}

async function changeFace(faceId, change) {
  $("messages").replaceChildren();
  try {
    await api(`/api/faces/${encodeURIComponent(faceId)}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(change),
    });
  } catch (error) {
    say(error.message);
  }
  await refresh();
}

function showProgress(text, done, total) {
  $("progress").hidden = false;
  $("progress-text").textContent = text;
  const bar = $("progress-bar");
  if (total) { bar.max = total; bar.value = done; } else { bar.removeAttribute("value"); }
}

function drawProgress(progress) {
  const busy = progress && (progress.state === "waiting" || progress.state === "running");
  $("restore").disabled = busy || uploading || !$("uploads").children.length;
  if (!progress || uploading) return busy;
  if (progress.state === "waiting") {
    const place = progress.queue_position;
    showProgress(place > 1 ? `Waiting: ${place - 1} other restoration(s) first…` :
      "Waiting for another restoration to finish…", 0, 0);
  } else if (progress.state === "running") {
    const count = progress.total ? ` (${progress.done} of ${progress.total})` : "";
    showProgress(`${progress.stage}${count}…`, progress.done, progress.total);
  } else {
    $("progress").hidden = true;
  }
  if (progress.state === "failed" && progress.message) {
    $("messages").replaceChildren();
    say(progress.message);
  } else if (progress.state === "done" && polling) {  // just finished
    $("messages").replaceChildren();
    say("Finished: the results are below.", true);
  }
  return busy;
}

// ---- drawing ----------------------------------------------------------------------------

async function removeUpload(upload) {
  $("messages").replaceChildren();
  try {
    await api(`/api/uploads/${encodeURIComponent(upload.id)}`, { method: "DELETE" });
  } catch (error) {
    say(`${upload.name} was not removed: ${error.message}`);
  }
  await refresh();
}

function removeButton(upload) {
  const button = element("button", { type: "button", className: "remove", text: "×",
    title: `Remove ${upload.name}`, "aria-label": `Remove ${upload.name}` });
  button.addEventListener("click", () => removeUpload(upload));
  return button;
}

function drawUploads(uploads, people) {
  $("uploads").replaceChildren(...uploads.map((upload) => element("li", {},
    upload.thumb ? element("img", { src: fileUrl(upload.thumb), alt: upload.name })
      : element("div", { className: "clip", text: "video clip" }),
    element("span", { text: upload.name }), removeButton(upload))));
  $("people").replaceChildren(...people.map((person) => element("li", {},
    element("strong", { text: `${person.name}: ` }),
    element("span", { className: "hint", text: `${person.guides.length} guide photo(s)` }),
    element("ul", { className: "thumbs" }, ...person.guides.map((guide) => element("li", {},
      element("img", { src: fileUrl(guide.thumb), alt: `guide of ${person.name}: ${guide.name}` }),
      element("span", { text: guide.name }), removeButton(guide)))))));
}

function compareView(face) {
  if (!face.before) return null;
  if (!face.after) {
    return element("img", { className: "single", src: fileUrl(face.before), alt: `face ${face.index}` });
  }
  const slider = element("input", { type: "range", min: "0", max: "100", value: "50",
    "aria-label": "Slide to compare before and after" });
  const after = element("img", { className: "after", src: fileUrl(face.after), alt: "after" });
  const view = element("div", { className: "compare" },
    element("img", { src: fileUrl(face.before), alt: "before" }), after,
    element("span", { className: "tag before", text: "before" }),
    element("span", { className: "tag after", text: "after" }), slider);
  slider.addEventListener("input", () => after.style.setProperty("--split", `${slider.value}%`));
  return view;
}

function faceCard(face, guides) {
  const facts = element("ul", { className: "facts" });
  facts.append(element("li", { text: `Person: ${face.person || "not recognised"}` }));
  if (face.frames) {
    const shown = face.shown_frame !== null ? ` (shown: frame ${face.shown_frame})` : "";
    facts.append(element("li", { text: `In frames ${face.frames}${shown}` }));
  }
  if (face.guide) {
    facts.append(element("li", { className: "guide-line" },
      element("img", { src: fileUrl(face.guide.thumb), alt: "guide used" }),
      element("span", { text: `Guide: ${face.guide.label}` })));
  }
  if (face.distance_before !== null) {
    const after = face.distance_after !== null ? `, after ${face.distance_after.toFixed(2)}` : "";
    facts.append(element("li", {
      text: `Identity distance to the person's guide: before ${face.distance_before.toFixed(2)}` +
        `${after} (under 0.6 usually means the same person)`,
    }));
  }
  const actions = element("div", { className: "actions" });
  const exclude = element("button", { type: "button", className: "secondary",
    text: face.excluded ? "Restore this face again" : "Keep this face as it was" });
  exclude.addEventListener("click", () => changeFace(face.id, { exclude: !face.excluded }));
  if (face.excluded || face.status === "restored") actions.append(exclude);
  if (face.choices.length) {
    const select = element("select", { "aria-label": "another guide" },
      ...face.choices.map((id) => element("option", { value: id, text: guides[id].label })));
    const run = element("button", { type: "button", text: "Use this guide" });
    run.addEventListener("click", () => changeFace(face.id, { guide: select.value }));
    actions.append(element("span", { text: "Another guide:" }), select, run);
  }
  return element("div", { className: "face", "data-face": face.id },
    element("h4", { text: `Face ${face.index + 1}` }),
    compareView(face),
    element("p", {},
      element("span", { className: `status ${face.status}`, text: face.status_text })),
    facts, actions);
}

function photoCard(photo, guides) {
  const card = element("div", { className: "photo", "data-photo": photo.id },
    element("h3", { text: photo.name }));
  if (photo.problem) {
    card.append(element("p", { className: "status skipped", text: `Nothing done: ${photo.problem}` }));
  }
  if (photo.restored) {
    const media = photo.kind === "clip"
      ? element("video", { src: fileUrl(photo.restored), controls: "" })
      : element("img", { className: "whole", src: fileUrl(photo.restored), alt: `${photo.name}, restored` });
    card.append(media, element("p", {}, element("a", { className: "button", href: fileUrl(photo.restored, true),
      download: photo.restored_name, text: `Download ${photo.restored_name}` })));
  } else if (!photo.problem) {
    card.append(element("p", { className: "hint", text: "No face of this photo was restored, so there is nothing to download." }));
  }
  if (photo.faces.length) {
    card.append(element("div", { className: "faces" }, ...photo.faces.map((face) => faceCard(face, guides))));
  }
  return card;
}

function drawResults(results) {
  $("results-step").hidden = !results;
  if (!results) return;
  $("summary").textContent = results.summary;
  $("guide-problems").replaceChildren(...results.guide_problems.map((unused) =>
    element("li", { text: `Guide ${unused.name} was not used: ${unused.problem}` })));
  $("download-all").hidden = !results.any_restored;
  const guides = Object.fromEntries(results.guides.map((guide) => [guide.id, guide]));
  $("results").replaceChildren(...results.photos.map((photo) => photoCard(photo, guides)));
}

let drawn = "";

async function refresh() {
  let state;
  try {
    state = await api("/api/state");
  } catch (error) {
    say(`The page cannot reach its server: ${error.message}`);
    return;
  }
  $("limits").textContent = `You can add ${state.limits}.`;
  const key = JSON.stringify([state.uploads, state.people, state.results]);
  if (key !== drawn) {  // redraw only what changed: a slider being dragged stays put
    drawn = key;
    drawUploads(state.uploads, state.people);
    drawResults(state.results);
  }
  const busy = drawProgress(state.progress);
  if (busy && !polling) polling = setInterval(refresh, 700);
  if (!busy && polling) { clearInterval(polling); polling = null; }
}

document.addEventListener("DOMContentLoaded", () => {
  setUpUploads();
  $("restore").addEventListener("click", startRestore);
  $("forget").addEventListener("click", async () => {
    await api("/api/forget", { method: "POST" });
    window.location.reload();
  });
  refresh();
});
