// plait dashboard: projects, runs, batches and tasks, kept live by the server-sent event stream.
// No framework and no build step. Every value from the server goes into the page as text.
"use strict";

const EVENT_TYPES = [
  "ProjectRegistered", "PlanAccepted", "RunStarted", "RunEnded", "RunCreated",
  "ExecutionModeSelected", "BaselineTested", "StopRequested", "RunCompleted", "RunFailed",
  "RunStopped", "RunResumed", "BatchStarted", "MergeStarted", "TestsPassed", "TestsFailed",
  "TestsFlaky", "BatchLanded", "BatchCompleted", "BatchFailed", "FellBackToSequential",
  "WorktreeCreated", "TaskStarted", "TaskOutput", "TaskSucceeded", "TaskFailed",
  "TaskInterrupted", "BranchMerged", "MergeConflicted", "CulpritFound", "TaskRequeued",
  "WorktreeRemoved", "WorkKept",
];
const TAIL_LINES = 200;
const TASK_PROGRESS = {
  requested: 0.05, created: 0.2, running: 0.5, succeeded: 0.75,
  failed: 1, merged: 1, conflicted: 1, ejected: 1, removed: 1,
};
const DONE_BATCH = new Set(["landed", "completed"]);
const DONE_TASK = new Set(["merged", "removed", "ejected", "conflicted", "failed"]);

const state = {
  token: takeToken(),
  projects: [],
  selected: sessionStorage.getItem("plait-project"),
  status: null,
  project: null,
  lastId: 0,
  tails: new Map(), // task_id -> output lines of the shown run
  open: new Set(), // task_ids whose output is unfolded
  source: null,
  retryTimer: null,
  refreshTimer: null,
};

// --- the token: from ?token=, then kept for this tab only ---------------------------------

function takeToken() {
  const url = new URL(window.location.href);
  const given = url.searchParams.get("token");
  if (given) {
    sessionStorage.setItem("plait-token", given);
    url.searchParams.delete("token");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  return sessionStorage.getItem("plait-token");
}

// --- talking to the server --------------------------------------------------------------

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new Error(error.message || `${method} ${path}: HTTP ${response.status}`);
  }
  return data;
}

function showMessage(text) {
  const box = document.getElementById("message");
  box.textContent = text || "";
  box.hidden = !text;
}

async function refresh() {
  try {
    state.projects = await api("GET", "/api/projects");
    if (!state.selected && state.projects.length) state.selected = state.projects[0].project_id;
    if (state.selected) {
      const id = encodeURIComponent(state.selected);
      const [project, status] = await Promise.all([
        api("GET", `/api/projects/${id}`),
        api("GET", `/api/projects/${id}/parallel/status`),
      ]);
      if (state.status && state.status.run_id !== status.run_id) state.tails.clear();
      state.project = project;
      state.status = status;
    }
    render();
  } catch (error) {
    showMessage(String(error.message || error));
  }
}

function scheduleRefresh() {
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(() => {
    state.refreshTimer = null;
    refresh();
  }, 150);
}

async function command(action) {
  if (!state.selected) return;
  showMessage("");
  try {
    const id = encodeURIComponent(state.selected);
    const answer = await api("POST", `/api/projects/${id}/parallel/${action}`);
    if (action === "start") state.tails.clear();
    setText("position", `${answer.message} (run ${answer.run_id})`);
    await refresh();
  } catch (error) {
    showMessage(String(error.message || error));
  }
}

// --- the event stream ---------------------------------------------------------------------
// EventSource reconnects by itself and sends Last-Event-ID. If it gives up (readyState
// CLOSED), a new one resumes with ?after= the last id seen: a server restart loses nothing.

async function follow() {
  if (!state.lastId) {
    try {
      state.lastId = (await api("GET", "/healthz")).position;
    } catch (error) {
      setConnection("offline");
      state.retryTimer = setTimeout(follow, 2000);
      return;
    }
  }
  const source = new EventSource(`/api/events?after=${state.lastId}`);
  state.source = source;
  source.onopen = () => {
    setConnection("live");
    refresh();
  };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      source.close();
      setConnection("offline");
      clearTimeout(state.retryTimer);
      state.retryTimer = setTimeout(follow, 2000);
    } else {
      setConnection("reconnecting");
    }
  };
  for (const type of EVENT_TYPES) source.addEventListener(type, onEvent);
}

function onEvent(message) {
  const id = Number(message.lastEventId);
  if (id) state.lastId = id;
  setText("position", `event ${state.lastId}`);
  const event = JSON.parse(message.data);
  const shown = state.status && state.status.run_id;
  if (event.type === "TaskOutput") {
    if (event.run_id === shown) appendOutput(event.task_id, event.data.text || "");
    return;
  }
  scheduleRefresh();
}

function appendOutput(taskId, text) {
  const lines = state.tails.get(taskId) || [];
  lines.push(...text.replace(/\n$/, "").split("\n"));
  state.tails.set(taskId, lines.slice(-TAIL_LINES));
  const pre = document.querySelector(`pre[data-task="${CSS.escape(taskId)}"]`);
  if (pre) {
    pre.textContent = state.tails.get(taskId).join("\n");
    pre.scrollTop = pre.scrollHeight;
  }
}

function setConnection(what) {
  const badge = document.getElementById("connection");
  badge.textContent = what;
  badge.dataset.state = what;
  badge.className = `badge badge-${what === "live" ? "completed" : "pending"}`;
}

// --- rendering ------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

function setText(id, text) {
  document.getElementById(id).textContent = text;
}

function badge(status) {
  const name = status || "none";
  return el("span", { class: `badge badge-${name}`, "data-status": name, text: name });
}

function bar(value, max, label) {
  return el("progress", { value, max, "aria-label": label, title: `${label}: ${value}/${max}` });
}

function taskStatus(task) {
  return task.status === "removed" && task.merge_commit ? "merged" : task.status;
}

function render() {
  document.getElementById("token-missing").hidden = Boolean(state.token);
  renderProjects();
  const section = document.getElementById("project");
  section.replaceChildren(...(state.project ? renderProject() : [el("p", { class: "muted", text: "No project yet: register one with POST /api/projects." })]));
}

function renderProjects() {
  const list = document.getElementById("project-list");
  list.replaceChildren(
    ...state.projects.map((p) =>
      el(
        "li",
        {},
        el(
          "button",
          {
            class: p.project_id === state.selected ? "project-link selected" : "project-link",
            "data-project": p.project_id,
            onclick: () => {
              state.selected = p.project_id;
              sessionStorage.setItem("plait-project", p.project_id);
              state.status = null;
              state.tails.clear();
              refresh();
            },
          },
          el("strong", { text: p.name }),
          el("span", { class: "muted small", text: p.repo_path }),
          p.active_run_id ? badge("running") : null,
        ),
      ),
    ),
  );
  if (!state.projects.length) list.replaceChildren(el("li", { class: "muted", text: "None yet." }));
}

function renderProject() {
  const project = state.project;
  const status = state.status || {};
  const active = ["running", "stopping", "created"].includes(status.status);
  const plan = project.plan;
  return [
    el(
      "div",
      { class: "project-head" },
      el("h2", { text: project.name }),
      el("span", { class: "muted small", text: project.repo_path }),
      el(
        "div",
        { class: "actions" },
        el("button", {
          id: "start", class: "primary", text: "Start",
          disabled: !state.token || !plan || active, onclick: () => command("start"),
        }),
        el("button", {
          id: "stop", text: "Stop",
          disabled: !state.token || !active, onclick: () => command("stop"),
        }),
      ),
    ),
    plan
      ? el("p", { class: "muted" }, `Plan: ${plan.batches.length} batch(es), ${plan.mode} — ${plan.reason || ""}`)
      : el("p", { class: "notice" }, "No plan yet: PUT one to /api/projects/", project.project_id, "/plan."),
    status.run_id ? renderRun(status) : el("p", { class: "muted", text: "No run yet." }),
    renderRuns(project.runs || []),
  ];
}

function renderRun(status) {
  const head = el(
    "div",
    { class: "run-head", id: "run", "data-run": status.run_id, "data-status": status.status },
    el("h3", {}, "Run ", el("code", { text: status.run_id })),
    badge(status.status),
    el("span", { class: "muted", text: `${status.execution_mode} · ${status.completed_batches}/${status.batches_total} batches` }),
    bar(status.completed_batches, Math.max(status.batches_total, 1), "batches completed"),
  );
  const notes = [];
  if (status.error) notes.push(el("p", { class: "notice notice-error", text: `Error: ${status.error}` }));
  if (status.landed_commit) notes.push(el("p", { class: "notice notice-ok", text: `Landed ${status.landed_commit}` }));
  const tasksByBatch = new Map();
  for (const task of status.tasks || []) {
    const list = tasksByBatch.get(task.batch_id) || [];
    list.push(task);
    tasksByBatch.set(task.batch_id, list);
  }
  const batches = (status.batches || []).map((b) => renderBatch(b, tasksByBatch.get(b.batch_id) || []));
  return el("section", { class: "run" }, head, ...notes, ...batches);
}

function renderBatch(batch, tasks) {
  const done = tasks.filter((t) => DONE_TASK.has(t.status)).length;
  const total = Math.max(batch.task_ids.length, 1);
  const problems = [];
  if (batch.culprits && batch.culprits.length) {
    problems.push(el("p", { class: "notice notice-error" }, "Culprit: ", batch.culprits.join(", "), " broke the tests; it was left out."));
  }
  if (batch.tests_passed === false && !batch.flaky) {
    problems.push(el("p", { class: "notice notice-error", text: `Tests failed (exit ${batch.test_exit_code})` }));
  }
  if (batch.flaky) problems.push(el("p", { class: "notice", text: "Tests were flaky (failed once, then passed)." }));
  if (batch.fell_back_reason) problems.push(el("p", { class: "notice", text: `Fell back to sequential: ${batch.fell_back_reason}` }));
  for (const error of batch.errors || []) problems.push(el("p", { class: "notice notice-error", text: error }));
  return el(
    "article",
    { class: "batch", "data-batch": batch.batch_id, "data-status": batch.status },
    el(
      "div",
      { class: "batch-head" },
      el("h4", { text: `Batch ${batch.batch_id}` }),
      badge(batch.status),
      el("span", { class: "muted small", text: batch.can_parallel ? "parallel" : "sequential" }),
      bar(DONE_BATCH.has(batch.status) ? total : done, total, `batch ${batch.batch_id}`),
    ),
    ...problems,
    el("ul", { class: "tasks" }, ...tasks.map(renderTask)),
  );
}

function renderTask(task) {
  const shown = taskStatus(task);
  const tail = state.tails.get(task.task_id);
  const text = tail ? tail.join("\n") : task.last_output_line || "";
  const output = el("pre", { class: "tail", "data-task": task.task_id, text });
  const details = el(
    "details",
    { open: state.open.has(task.task_id) || shown === "running" },
    el("summary", { text: "output" }),
    output,
  );
  details.addEventListener("toggle", () => {
    if (details.open) state.open.add(task.task_id);
    else state.open.delete(task.task_id);
  });
  const conflict = task.conflict_files && task.conflict_files.length
    ? el("p", { class: "notice notice-error" }, "Conflict in ", task.conflict_files.join(", "), shown === "conflicted" ? " (re-run on the new tip)" : "")
    : null;
  return el(
    "li",
    { class: "task", "data-task": task.task_id, "data-status": shown },
    el(
      "div",
      { class: "task-head" },
      el("code", { text: task.task_id }),
      badge(shown),
      task.attempt > 1 ? el("span", { class: "muted small", text: `attempt ${task.attempt}` }) : null,
      task.error ? el("span", { class: "error small", text: task.error }) : null,
      bar(Math.round((TASK_PROGRESS[task.status] || 0) * 100), 100, `task ${task.task_id}`),
    ),
    conflict,
    details,
  );
}

function renderRuns(runs) {
  if (!runs.length) return null;
  return el(
    "section",
    { class: "runs" },
    el("h3", { text: "Runs" }),
    el(
      "ul",
      {},
      ...runs.map((r) => el("li", {}, el("code", { text: r.run_id }), " ", badge(r.status))),
    ),
  );
}

document.addEventListener("DOMContentLoaded", () => {
  render();
  refresh();
  follow();
});
