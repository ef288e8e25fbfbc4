// The reference console: a person's whole story through lorapin's public API only.
"use strict";

const config = window.LORAPIN || { api: "", localTokens: true };
const state = { token: null, user: null, uploaded: [], versions: [], current: null, training: null };
const $ = (selector) => document.querySelector(selector);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

async function api(method, path, body) {
  const response = await fetch(`${config.api}${path}`, {
    method,
    headers: { "Authorization": `Bearer ${state.token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null, retryAfter: response.headers.get("Retry-After") };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const short = (versionId) => (versionId || "").slice(0, 8);

function versionLabel(versionId) {
  const found = state.versions.find((v) => v.id === versionId);
  return found ? `v${found.seq} (${short(versionId)})` : short(versionId);
}

function findingNode(finding) {
  const name = finding.image_key ? ` ${finding.image_key.split("/").pop()}` : "";
  return el("div", { class: `finding ${finding.severity}`, "data-testid": "finding" },
    el("code", {}, finding.code), name ? ` ${name}: ` : ": ", finding.message);
}

// --- sign in -----------------------------------------------------------------------------------
async function signIn(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  let token = String(form.get("token") || "").trim();
  const user = String(form.get("user") || "").trim();
  if (!token && user && config.localTokens) {
    const answer = await fetch(`${config.api}/_local/token`, { method: "POST", body: JSON.stringify({ user }) });
    token = (await answer.json()).token;
  }
  if (!token) return;
  state.token = token;
  state.user = user || JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub;
  $("#who").textContent = `signed in as ${state.user}`;
  $("#sign-in").hidden = true;
  $("#app").hidden = false;
  await Promise.all([loadModel(), loadPhotos(), loadGallery()]);
}

// --- photos ------------------------------------------------------------------------------------
async function upload() {
  const files = Array.from($("#files").files);
  if (!files.length) return;
  $("#upload-status").textContent = `uploading ${files.length} photo(s)…`;
  let sent = 0;
  for (const file of files) {
    const type = file.type || "image/jpeg";
    const answer = await api("POST", "/uploads", { count: 1, content_type: type });
    if (answer.status !== 201) { $("#upload-status").textContent = answer.body.error.message; return; }
    const [slot] = answer.body.uploads;
    const form = new FormData();
    for (const [key, value] of Object.entries(slot.fields)) form.append(key, value);
    form.append("file", file);
    const stored = await fetch(slot.url, { method: "POST", body: form });
    if (stored.status !== 204 && stored.status !== 201 && stored.status !== 200) {
      $("#upload-status").textContent = `${file.name} was refused by storage (${stored.status}): at most 20 MB`;
      return;
    }
    state.uploaded.push(slot.key);
    sent += 1;
  }
  $("#files").value = "";  // the next choice starts afresh
  $("#upload-status").textContent = `${sent} photo(s) uploaded; they are checked as they arrive`;
}

async function loadPhotos() {
  const answer = await api("GET", "/photos");
  const grid = $("#photo-set");
  grid.replaceChildren();
  if (answer.status !== 200) { grid.append("No photos yet: your first training's photos appear here."); return; }
  for (const photo of answer.body.photos) {
    const remove = el("button", { "data-testid": "remove-photo" }, "remove");
    remove.addEventListener("click", async () => { await api("DELETE", `/photos/${photo.name}`); await loadPhotos(); });
    grid.append(el("div", { class: "card", "data-testid": "photo" },
      photo.thumbnail_url ? el("img", { src: photo.thumbnail_url, alt: photo.name }) : el("div", {}, photo.name),
      ...photo.findings.map(findingNode), remove));
  }
}

// --- training ----------------------------------------------------------------------------------
async function startTraining(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { image_keys: state.uploaded, mode: form.get("mode"), acknowledge_warnings: form.get("acknowledge_warnings") === "on" };
  if (form.get("trigger_word")) body.trigger_word = form.get("trigger_word");
  const findings = $("#findings");
  findings.replaceChildren();
  let answer = await api("POST", "/trainings", body);
  for (let tries = 0; answer.status === 409 && answer.body.error.code === "PHOTOS_PENDING" && tries < 20; tries += 1) {
    findings.replaceChildren(el("p", { "data-testid": "pending" }, "Your photos are still being checked…"));
    await sleep(1000 * Number(answer.retryAfter || 2));
    answer = await api("POST", "/trainings", body);
  }
  findings.replaceChildren();
  if (answer.status !== 202) {
    findings.append(el("p", { "data-testid": "refused" }, answer.body.error.message),
      ...(answer.body.error.details || []).filter((d) => d.code).map(findingNode));
    return;
  }
  state.uploaded = [];
  findings.append(...answer.body.findings.map(findingNode));
  await watch(answer.body.training.id);
}

async function watch(trainingId) {
  const progress = $("#progress");
  const cancel = el("button", { "data-testid": "cancel-training" }, "Cancel");
  cancel.addEventListener("click", () => api("POST", `/trainings/${trainingId}/cancel`));
  for (;;) {
    const answer = await api("GET", `/trainings/${trainingId}`);
    const training = answer.body.training;
    progress.replaceChildren(el("p", {}, `Training ${training.seq} on ${training.image_count} photos: `,
      el("span", { class: "status", "data-testid": "training-status" }, training.status),
      training.error ? ` (${training.error})` : ""), ...(["succeeded", "failed", "canceled"].includes(training.status) ? [] : [cancel]));
    if (["succeeded", "failed", "canceled"].includes(training.status)) break;
    await sleep(1500);
  }
  for (let tries = 0; tries < 20; tries += 1) {  // the new version becomes current a moment after
    await loadModel();
    const answer = await api("GET", `/trainings/${trainingId}`);
    if (!answer.body.training.version_id || state.current === answer.body.training.version_id) break;
    await sleep(500);
  }
  await loadPhotos();
}

// --- versions ----------------------------------------------------------------------------------
async function loadModel() {
  const answer = await api("GET", "/model");
  const timeline = $("#timeline");
  timeline.replaceChildren();
  if (answer.status !== 200) { timeline.append(el("li", {}, "No model yet.")); return; }
  const model = answer.body.model;
  state.versions = model.versions;
  state.current = model.current_version ? model.current_version.id : null;
  $("#train-form [name=trigger_word]").placeholder = `${model.trigger_word} (kept)`;
  for (const version of model.versions) {
    const item = el("li", { class: version.active ? "current" : "", "data-testid": "version" },
      `v${version.seq} ${short(version.id)} · ${version.image_count} photos · ${version.activated_at} `);
    if (version.active) item.append(el("span", { class: "badge", "data-testid": "current-badge" }, "current"));
    else {
      const rollback = el("button", { "data-testid": "rollback" }, "make current");
      rollback.addEventListener("click", async () => {
        await api("POST", "/model/rollback", { version_id: version.id });
        await loadModel();
      });
      item.append(rollback);
    }
    timeline.append(item);
  }
  for (const select of [$("#generate-form [name=version_a]"), $("#generate-form [name=version_b]")]) {
    const first = select.name === "version_a" ? "the current version" : "(nothing)";
    select.replaceChildren(el("option", { value: "" }, first),
      ...model.versions.map((v) => el("option", { value: v.id }, versionLabel(v.id))));
  }
}

// --- generating --------------------------------------------------------------------------------
async function generate(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const seed = form.get("seed") === "" ? Math.floor(Math.random() * 2 ** 31) : Number(form.get("seed"));
  const versions = [form.get("version_a") || null];
  if (form.get("version_b")) versions.push(form.get("version_b"));
  const results = $("#results");
  results.replaceChildren();
  const started = await Promise.all(versions.map((versionId) =>
    api("POST", "/generations", { prompt: form.get("prompt"), seed, ...(versionId ? { version_id: versionId } : {}) })));
  for (const answer of started) {
    if (answer.status !== 202) { results.append(el("p", { "data-testid": "refused" }, answer.body.error.message)); continue; }
    const figure = el("figure", { "data-testid": "result" }, el("figcaption", {}, "…"));
    results.append(figure);
    follow(answer.body.generation.id, figure);
  }
}

async function follow(generationId, figure) {
  for (;;) {
    const { body } = await api("GET", `/generations/${generationId}`);
    const generation = body.generation;
    const madeBy = versionLabel((generation.model_version_ref || "").split(":")[1]);
    figure.replaceChildren(...generation.outputs.map((url) => el("img", { src: url, alt: generation.prompt })),
      el("figcaption", { "data-testid": "result-caption" }, `${madeBy} · seed ${generation.seed} · `,
        el("span", { class: "status", "data-testid": "generation-status" }, generation.status)));
    if (["succeeded", "failed", "canceled"].includes(generation.status)) break;
    await sleep(1000);
  }
  await loadGallery();
}

async function loadGallery() {
  const answer = await api("GET", "/generations?limit=24");
  const gallery = $("#gallery");
  gallery.replaceChildren();
  if (answer.status !== 200) return;
  for (const generation of answer.body.generations) {
    const versionId = (generation.model_version_ref || "").split(":")[1];
    gallery.append(el("div", { class: "card", "data-testid": "gallery-item" },
      ...generation.outputs.slice(0, 1).map((url) => el("img", { src: url, alt: generation.prompt })),
      el("div", { "data-testid": "made-by" }, `${versionLabel(versionId)} · seed ${generation.seed}`),
      el("div", {}, `${generation.status}: ${generation.prompt}`)));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#sign-in-form").addEventListener("submit", signIn);
  $("#upload").addEventListener("click", upload);
  $("#train-form").addEventListener("submit", startTraining);
  $("#generate-form").addEventListener("submit", generate);
  $("#refresh-gallery").addEventListener("click", loadGallery);
});
