// plait dashboard: a workspace over the HTTP API, kept live by the server-sent event stream.
// No framework and no build step. It reads only the API; every value goes into the page as
// text (never as HTML), and a value the server does not have is shown as nothing, never as
// "null" or "undefined". Status words are the API's own (plait/domain/statuses.py).
"use strict";

const LOG_CHUNK = 65536;

const state = {
  signedIn: true, // the page loaded, so its cookie was good; a 401 later says otherwise
  projects: [],
  runs: [],
  runWords: [],
  selectedProject: sessionStorage.getItem("plait-project"),
  route: parseRoute(),
  run: null, // the shown run's status view
  timeline: null,
  lastId: 0,
  open: new Set(JSON.parse(sessionStorage.getItem("plait-open") || "[]")), // batches unfolded
  tests: new Map(), // batch_id -> the batch's test runs, as last fetched
  log: null, // {run, task, attempt, next, text, source, busy, again}
  diff: null, // {run, task, attempt, data}
  panelTab: "log",
  chosenAttempt: null,
  eventTypes: [],
  refreshTimer: null,
  ticker: null,
};

// --- the token: the server exchanged /?token= for an HttpOnly cookie before the page loaded;
// the page never sees the token, and every request (the event stream too) carries the cookie.

// --- routes: #/runs/<run>[/tasks/<task>] ------------------------------------------------------

function parseRoute() {
  const parts = window.location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  const route = { run: null, task: null };
  if (parts[0] === "runs" && parts[1]) route.run = decodeURIComponent(parts[1]);
  if (parts[2] === "tasks" && parts[3]) route.task = decodeURIComponent(parts[3]);
  return route;
}

function go(run, task) {
  const hash = run ? `#/runs/${encodeURIComponent(run)}${task ? `/tasks/${encodeURIComponent(task)}` : ""}` : "#/";
  if (window.location.hash !== hash) window.location.hash = hash;
  else onRoute();
}

function onRoute() {
  const before = state.route;
  state.route = parseRoute();
  if (before.run !== state.route.run) {
    state.run = null;
    state.timeline = null;
    state.tests.clear();
  }
  if (before.task !== state.route.task || before.run !== state.route.run) {
    state.log = null;
    state.diff = null;
  }
  refresh();
}

// --- talking to the server --------------------------------------------------------------

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "same-origin",
  });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401 && state.signedIn) {
    state.signedIn = false;
    render();
  }
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
    const filter = document.getElementById("run-status").value;
    const query = filter ? `?limit=200&status=${encodeURIComponent(filter)}` : "?limit=200";
    const [projects, runs] = await Promise.all([api("GET", "/api/projects"), api("GET", `/api/runs${query}`)]);
    state.projects = projects;
    state.runs = runs;
    let runId = state.route.run;
    if (runId) {
      const [run, timeline] = await Promise.all([
        api("GET", `/api/runs/${encodeURIComponent(runId)}`),
        api("GET", `/api/runs/${encodeURIComponent(runId)}/timeline`),
      ]);
      state.run = run;
      state.timeline = timeline;
      state.selectedProject = run.project_id;
    } else {
      if (!state.selectedProject && projects.length) state.selectedProject = projects[0].project_id;
      const project = projects.find((p) => p.project_id === state.selectedProject);
      const current = project && (project.active_run_id || project.last_run_id);
      if (current) {
        state.run = await api("GET", `/api/runs/${encodeURIComponent(current)}`);
        state.timeline = await api("GET", `/api/runs/${encodeURIComponent(current)}/timeline`);
      } else {
        state.run = null;
        state.timeline = null;
      }
    }
    if (state.selectedProject) sessionStorage.setItem("plait-project", state.selectedProject);
    await refreshOpenTests();
    render();
    if (state.route.task) await loadPanel();
  } catch (error) {
    showMessage(String(error.message || error));
  }
}

function scheduleRefresh() {
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(() => {
    state.refreshTimer = null;
    refresh();
  }, 200);
}

async function refreshOpenTests() {
  const run = state.run;
  if (!run) return;
  for (const batch of run.batches || []) {
    if (!state.open.has(openKey(run.run_id, batch.batch_id))) continue;
    if (!(batch.test_runs || []).length && !(batch.conflicts || []).length) continue;
    state.tests.set(batch.batch_id, await api("GET", `/api/runs/${encodeURIComponent(run.run_id)}/batches/${batch.batch_id}/tests`));
  }
}

async function act(label, method, path, body) {
  showMessage("");
  try {
    const answer = await api(method, path, body);
    setText("position", `${answer.message || label}`);
    if (answer.run_id) go(answer.run_id, state.route.task);
    else await refresh();
  } catch (error) {
    showMessage(`${label}: ${error.message || error}`);
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
      setTimeout(follow, 2000);
      return;
    }
  }
  const source = new EventSource(`/api/events?after=${state.lastId}`);
  source.onopen = () => {
    setConnection("live");
    refresh();
  };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      source.close();
      setConnection("offline");
      setTimeout(follow, 2000);
    } else {
      setConnection("reconnecting");
    }
  };
  source.onmessage = onEvent;
  for (const type of state.eventTypes || []) source.addEventListener(type, onEvent);
}

function onEvent(message) {
  const id = Number(message.lastEventId);
  if (id) state.lastId = id;
  setText("position", `event ${state.lastId}`);
  const event = JSON.parse(message.data);
  if (event.type === "TaskOutput") {
    const log = state.log;
    if (log && event.run_id === log.run && event.task_id === log.task && event.attempt === log.attempt) {
      readLog(); // the new output, from where the shown log ended
    }
    return; // output alone changes nothing else on the page
  }
  scheduleRefresh();
}

function setConnection(what) {
  const badge = document.getElementById("connection");
  badge.textContent = what;
  badge.dataset.state = what;
}

// --- rendering helpers --------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false || child === "") continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function setText(id, text) {
  document.getElementById(id).textContent = text || "";
}

function badge(status) {
  if (!status) return null;
  return el("span", { class: `badge s-${status}`, "data-status": status, text: status });
}

function short(sha) {
  return sha ? String(sha).slice(0, 12) : "";
}

function when(iso) {
  if (!iso) return "";
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? "" : moment.toLocaleString();
}

function seconds(value) {
  if (value === null || value === undefined) return "";
  if (value < 60) return `${value.toFixed(1)} s`;
  const minutes = Math.floor(value / 60);
  if (minutes < 60) return `${minutes} min ${String(Math.round(value % 60)).padStart(2, "0")} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

function since(start, end) {
  if (!start) return null;
  const from = new Date(start).getTime();
  const to = end ? new Date(end).getTime() : Date.now();
  return Math.max(0, (to - from) / 1000);
}

// A task whose current attempt started and has not ended: its duration and diff still grow.
function working(task) {
  return Boolean(task.started_at) && !task.ended_at;
}

function basename(path) {
  return path ? String(path).split("/").filter(Boolean).pop() : "";
}

function code(text, attrs = {}) {
  return text ? el("code", { ...attrs, text }) : null;
}

function fact(label, ...value) {
  const shown = value.flat().filter((v) => v !== null && v !== undefined && v !== "");
  if (!shown.length) return null;
  return el("span", { class: "fact" }, el("span", { class: "muted", text: `${label} ` }), ...shown);
}

function button(label, attrs, onclick) {
  return el("button", { ...attrs, disabled: attrs.disabled || !state.signedIn, onclick }, label);
}

// --- the page ---------------------------------------------------------------------------------

function render() {
  document.getElementById("token-missing").hidden = state.signedIn;
  renderProjects();
  renderRunList();
  const workspace = document.getElementById("workspace");
  workspace.replaceChildren(...renderWorkspace());
  keepTicking();
}

function keepTicking() {
  // Open spans and durations grow while the run goes on; nothing else needs a timer.
  const live = state.run && (state.run.actions || []).includes("stop");
  if (live && !state.ticker) {
    state.ticker = setInterval(() => {
      const chart = document.getElementById("timeline");
      if (chart && state.timeline) chart.replaceWith(renderTimeline(state.timeline));
    }, 1000);
  } else if (!live && state.ticker) {
    clearInterval(state.ticker);
    state.ticker = null;
  }
}

function renderProjects() {
  const list = document.getElementById("project-list");
  if (!state.projects.length) {
    list.replaceChildren(el("li", { class: "muted", text: "None yet: register one with POST /api/projects." }));
    return;
  }
  list.replaceChildren(
    ...state.projects.map((p) =>
      el(
        "li",
        {},
        el(
          "button",
          {
            class: p.project_id === state.selectedProject ? "project-link selected" : "project-link",
            "data-project": p.project_id,
            onclick: () => {
              state.selectedProject = p.project_id;
              sessionStorage.setItem("plait-project", p.project_id);
              go(p.active_run_id || p.last_run_id || null, null);
            },
          },
          el("strong", { text: p.name }),
          el("span", { class: "muted small", text: p.repo_path }),
          p.active_run_id ? badge((state.runs.find((r) => r.run_id === p.active_run_id) || {}).status) : null,
        ),
      ),
    ),
  );
}

function renderRunList() {
  const list = document.getElementById("run-list");
  const search = document.getElementById("run-search").value.trim().toLowerCase();
  const mine = document.getElementById("run-mine").checked;
  const shown = state.runs.filter(
    (r) =>
      (!mine || r.project_id === state.selectedProject) &&
      (!search || r.run_id.includes(search) || String(r.repo_path || "").toLowerCase().includes(search)),
  );
  if (!shown.length) {
    list.replaceChildren(el("li", { class: "muted", text: state.runs.length ? "No run matches." : "No run yet." }));
    return;
  }
  const current = state.run && state.run.run_id;
  list.replaceChildren(
    ...shown.map((r) =>
      el(
        "li",
        {},
        el(
          "a",
          {
            class: r.run_id === current ? "run-link selected" : "run-link",
            href: `#/runs/${encodeURIComponent(r.run_id)}`,
            "data-run": r.run_id,
          },
          el("span", { class: "run-line" }, badge(r.status), el("code", { text: r.run_id })),
          el(
            "span",
            { class: "muted small" },
            [basename(r.repo_path), when(r.started_at), seconds(r.duration ?? since(r.started_at, null)),
             `${r.tasks_landed}/${r.tasks_total} landed`].filter(Boolean).join(" · "),
          ),
        ),
      ),
    ),
  );
}

function renderWorkspace() {
  const project = state.projects.find((p) => p.project_id === state.selectedProject);
  const parts = [];
  if (project) parts.push(renderProjectHead(project));
  if (!state.run) {
    if (project) parts.push(el("p", { class: "muted", id: "no-run", text: project.plan ? "No run yet: Start runs the plan." : "No run yet, and no plan: PUT one to the project's /plan." }));
    else if (!state.projects.length) parts.push(el("p", { class: "muted", text: "No project yet." }));
    return parts;
  }
  parts.push(renderRun(state.run));
  return parts;
}

function renderProjectHead(project) {
  const active = Boolean(project.active_run_id);
  const plan = project.plan;
  return el(
    "div",
    { class: "project-head" },
    el("h2", { text: project.name }),
    el("span", { class: "muted small", text: project.repo_path }),
    plan ? el("span", { class: "muted small", text: `plan: ${plan.batches.length} batch(es), ${plan.mode}` }) : null,
    el(
      "div",
      { class: "actions" },
      button("Start", { id: "start", class: "primary", disabled: !plan || active }, () =>
        act("Start", "POST", `/api/projects/${encodeURIComponent(project.project_id)}/parallel/start`)),
    ),
  );
}

function renderRun(run) {
  const id = encodeURIComponent(run.run_id);
  const actions = run.actions || [];
  const head = el(
    "div",
    { class: "run-head", id: "run", "data-run": run.run_id, "data-status": run.status },
    el("h3", {}, "Run ", el("code", { text: run.run_id })),
    badge(run.status),
    el(
      "div",
      { class: "actions" },
      button("Stop", { id: "stop", disabled: !actions.includes("stop") }, () =>
        act("Stop", "POST", `/api/projects/${encodeURIComponent(run.project_id)}/parallel/stop`)),
      button("Resume", { id: "resume", disabled: !actions.includes("resume") }, () =>
        act("Resume", "POST", `/api/projects/${encodeURIComponent(run.project_id)}/parallel/resume`, { run_id: run.run_id })),
      button("Land", { id: "land", class: actions.includes("land") ? "primary" : "", disabled: !actions.includes("land") }, () =>
        act("Land", "POST", `/api/runs/${id}/land`)),
    ),
  );
  const facts = el(
    "div",
    { class: "facts small" },
    fact("project", run.repo_path),
    fact("base", run.base_branch, run.base_commit ? [" @ ", code(short(run.base_commit))] : null),
    fact("result", code(run.result_branch), run.result_commit ? [" @ ", code(short(run.result_commit))] : null),
    fact("mode", run.execution_mode),
    fact("schedule", run.schedule),
    fact("on_task_failure", run.on_task_failure),
    fact("started", when(run.started_at || run.created_at)),
    fact("ended", when(run.ended_at)),
    fact("duration", seconds(run.duration ?? since(run.started_at, null))),
    fact("batches", `${run.completed_batches}/${run.batches_total} landed`),
    run.tokens_in || run.cost_usd ? fact("agents", `${run.tokens_in.toLocaleString()}/${run.tokens_out.toLocaleString()} tokens, $${run.cost_usd.toFixed(4)}`) : null,
  );
  const byBatch = new Map();
  for (const task of run.tasks || []) {
    const list = byBatch.get(task.batch_id) || [];
    list.push(task);
    byBatch.set(task.batch_id, list);
  }
  const selected = state.route.task && (run.tasks || []).find((t) => t.task_id === state.route.task);
  return el(
    "section",
    { class: "run" },
    head,
    facts,
    ...outcome(run),
    state.timeline ? renderTimeline(state.timeline) : null,
    el("div", { class: selected ? "work split" : "work" },
      el("div", { class: "batches" },
        run.schedule === "ready" && byBatch.has(0) ? renderQueue(run, byBatch.get(0)) : null,
        ...(run.batches || []).map((b) => renderBatch(run, b, byBatch.get(b.batch_id) || []))),
      selected ? renderPanel(run, selected) : null),
  );
}

// The outcome is the run's own sentence (only a run whose base moved says "Landed"); its
// status gives it its colour.
const OUTCOME_STYLE = { landed: "notice-ok", kept: "notice-warn", stopped: "notice-warn", failed: "notice-error" };

function outcome(run) {
  const notes = [el("p", { class: `notice ${OUTCOME_STYLE[run.status] || ""}`, id: "run-outcome", "data-status": run.status }, run.outcome || "")];
  if (run.landable_note) {
    notes.push(
      el("p", { class: "notice notice-land", id: "landable" }, `${run.landable_note} Land lands it (or `, el("code", { text: run.land_command }), ")."),
    );
  }
  return notes;
}

// --- the timeline: a Gantt of tasks by batch and attempt, with merge, test and land spans ----

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, title) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  if (title) {
    const tip = document.createElementNS(SVG, "title");
    tip.textContent = title;
    node.append(tip);
  }
  return node;
}

function renderTimeline(timeline) {
  const spans = timeline.spans || [];
  const start = new Date(timeline.started_at || (spans[0] && spans[0].start) || Date.now()).getTime();
  const times = spans.flatMap((s) => [s.start, s.end]).filter(Boolean).map((t) => new Date(t).getTime());
  const end = Math.max(timeline.ended_at ? new Date(timeline.ended_at).getTime() : Date.now(), ...times, start + 1000);
  const rows = [];
  const batches = [...new Set(spans.filter((s) => s.batch_id !== null).map((s) => s.batch_id))];
  for (const batch of batches) {
    rows.push({ key: `b${batch}`, label: `batch ${batch}`, batch, task: null });
    const tasks = [...new Set(spans.filter((s) => s.batch_id === batch && s.task_id).map((s) => s.task_id))];
    for (const task of tasks) rows.push({ key: `t${task}`, label: task, batch, task });
  }
  rows.push({ key: "run", label: "base tests, land", batch: null, task: null });
  const labelWidth = 130;
  const width = 1000;
  const rowHeight = 22;
  const plotWidth = width - labelWidth - 10;
  const x = (iso) => labelWidth + ((new Date(iso).getTime() - start) / (end - start)) * plotWidth;
  const height = rows.length * rowHeight + 24;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "gantt", role: "img", "aria-label": "Timeline" });
  rows.forEach((row, index) => {
    const y = index * rowHeight + 4;
    const name = svg("text", { x: 4, y: y + 14, class: row.task ? "gantt-task" : "gantt-batch" });
    name.textContent = row.label;
    chart.append(name);
    if (index % 2) chart.append(svg("rect", { x: labelWidth, y: y - 2, width: plotWidth, height: rowHeight, class: "gantt-stripe" }));
  });
  const rowOf = (span) => {
    if (span.task_id) return rows.findIndex((r) => r.task === span.task_id && r.batch === span.batch_id);
    if (span.batch_id === null) return rows.length - 1;
    return rows.findIndex((r) => r.batch === span.batch_id && !r.task);
  };
  for (const span of spans) {
    const index = rowOf(span);
    if (index < 0 || !span.start) continue;
    const y = index * rowHeight + 4;
    const left = x(span.start);
    const right = span.end ? x(span.end) : x(new Date(end).toISOString());
    const label = describeSpan(span);
    if (span.kind === "land") {
      const middle = right;
      chart.append(svg("path", { d: `M${middle} ${y} l6 8 l-6 8 l-6 -8 z`, class: "gantt-land", "data-kind": "land" }, label));
      continue;
    }
    const kind = span.kind === "test" ? (span.passed === false ? "test-red" : "test-green") : span.kind;
    const status = span.status ? ` s-${span.status}` : "";
    const inset = span.kind === "batch" ? 6 : span.kind === "merge" || span.kind === "test" ? 3 : 1;
    chart.append(
      svg("rect", {
        x: left, y: y + inset, width: Math.max(2, right - left), height: rowHeight - 4 - 2 * inset,
        rx: 3, class: `gantt-${kind}${status}${span.end ? "" : " gantt-open"}`, "data-kind": span.kind,
        "data-task": span.task_id || null, "data-attempt": span.attempt || null,
      }, label),
    );
  }
  const axis = rows.length * rowHeight + 18;
  for (let i = 0; i <= 4; i += 1) {
    const at = labelWidth + (plotWidth * i) / 4;
    chart.append(svg("line", { x1: at, x2: at, y1: 0, y2: axis - 12, class: "gantt-grid" }));
    const tick = svg("text", { x: at, y: axis, class: "gantt-axis", "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" });
    tick.textContent = seconds(((end - start) / 1000) * (i / 4));
    chart.append(tick);
  }
  return el("figure", { class: "timeline", id: "timeline" }, chart,
    el("figcaption", { class: "muted small" }, "Attempts by batch; blue: merge; green and red: test runs; ◆: a landing. Hover for details."));
}

function describeSpan(span) {
  const took = seconds(since(span.start, span.end));
  if (span.kind === "attempt" || span.kind === "resolution") {
    const what = span.kind === "resolution" ? "resolving a conflict" : `attempt ${span.attempt}`;
    return `${span.task_id}: ${what}, ${span.status}, ${took}`;
  }
  if (span.kind === "test") {
    const failing = (span.failing_tests || []).length ? `; failing: ${span.failing_tests.join(", ")}` : "";
    return `${span.label || "tests"} on ${short(span.commit)}: ${span.flaky ? "flaky" : span.passed ? "passed" : "failed"}, ${took}${failing}`;
  }
  if (span.kind === "merge") return `batch ${span.batch_id}: merging, ${took}`;
  if (span.kind === "land") return span.label || `batch ${span.batch_id}: landed on the run's result`;
  return `batch ${span.batch_id}: ${span.status || ""}, ${took}`;
}

// --- batches and their tasks --------------------------------------------------------------

function openKey(run, batch) {
  return `${run}:${batch}`;
}

function renderBatch(run, batch, tasks) {
  const key = openKey(run.run_id, batch.batch_id);
  const hasTests = (batch.test_runs || []).length || (batch.conflicts || []).length || (batch.culprits || []).length;
  const problems = [];
  for (const culprit of batch.culprits || []) {
    const task = tasks.find((t) => t.task_id === culprit);
    problems.push(el("p", { class: "notice notice-error culprit" }, "Culprit: ", el("code", { text: culprit }), ` — ${task ? task.note : "its branch broke the tests"}`));
  }
  for (const conflict of batch.conflicts || []) {
    problems.push(el("p", { class: "notice notice-warn" }, "Conflict: ", el("code", { text: conflict.task_id }), ` in ${conflict.files.join(", ")}`));
  }
  if (batch.fell_back_reason) problems.push(el("p", { class: "notice", text: `Sequential fallback: ${batch.fell_back_reason}` }));
  for (const error of batch.errors || []) problems.push(el("p", { class: "notice notice-error", text: error }));
  const details = el(
    "details",
    { class: "tests", open: state.open.has(key), "data-batch": batch.batch_id },
    el("summary", {}, `Test output (${(batch.test_runs || []).length} run(s))`),
    renderTests(state.tests.get(batch.batch_id)),
  );
  details.addEventListener("toggle", async () => {
    if (details.open) state.open.add(key);
    else state.open.delete(key);
    sessionStorage.setItem("plait-open", JSON.stringify([...state.open]));
    if (details.open) {
      await refreshOpenTests();
      details.replaceChildren(details.firstChild, renderTests(state.tests.get(batch.batch_id)));
    }
  });
  return el(
    "article",
    { class: "batch", "data-batch": batch.batch_id, "data-status": batch.status },
    el(
      "div",
      { class: "batch-head" },
      el("h4", { text: `Batch ${batch.batch_id}` }),
      badge(batch.status),
      el("span", { class: "muted small", text: [batch.can_parallel ? `parallel, ${Math.min(tasks.length, run.max_concurrency || tasks.length)} at a time` : "one at a time", seconds(batch.duration ?? since(batch.started_at, batch.ended_at))].filter(Boolean).join(" · ") }),
    ),
    ...problems,
    renderTaskTable(run, tasks),
    hasTests ? details : null,
  );
}

// A `schedule: ready` run's tasks that no merge round has taken in yet (batch id 0).
function renderQueue(run, tasks) {
  return el(
    "article",
    { class: "batch", "data-batch": 0, id: "ready-queue" },
    el(
      "div",
      { class: "batch-head" },
      el("h4", { text: "Ready queue" }),
      el("span", { class: "muted small", text: "each task starts once its dependencies landed; a merge round takes it in when it finishes" }),
    ),
    renderTaskTable(run, tasks),
  );
}

function renderTaskTable(run, tasks) {
  const id = encodeURIComponent(run.run_id);
  const agents = tasks.some((t) => t.agent);
  const header = ["task", "status", "attempt", "duration", "commit", ...(agents ? ["agent", "tokens", "cost"] : []), "note", ""];
  return el(
    "table",
    { class: "task-table" },
    el("thead", {}, el("tr", {}, ...header.map((h) => el("th", { text: h })))),
    el(
      "tbody",
      {},
      ...tasks.map((task) => {
        const actions = task.actions || [];
        const cells = [
          el("td", {}, el("a", { href: `#/runs/${id}/tasks/${encodeURIComponent(task.task_id)}`, class: "task-link" }, el("code", { text: task.task_id }))),
          el("td", {}, badge(task.status)),
          el("td", { class: "num", text: task.attempt || "" }),
          el("td", { class: "num", text: seconds(task.duration ?? (working(task) ? since(task.started_at, null) : null)) }),
          el("td", {}, el("code", { title: task.branch || null, text: short(task.commit) })),
        ];
        if (agents) {
          cells.push(
            el("td", { class: "small", text: [task.agent, task.agent_version, task.model].filter(Boolean).join(" ") }),
            el("td", { class: "num small", text: task.agent ? `${task.total_tokens_in.toLocaleString()}/${task.total_tokens_out.toLocaleString()}` : "" }),
            el("td", { class: "num small", text: task.agent ? `$${task.total_cost_usd.toFixed(4)}` : "" }),
          );
        }
        cells.push(
          el("td", { class: "note small", text: task.note || task.last_output_line || "" }),
          el(
            "td",
            { class: "row-actions" },
            actions.includes("retry") ? button("Retry", { class: "retry", "data-task": task.task_id }, () => act(`Retry ${task.task_id}`, "POST", `/api/runs/${id}/tasks/${encodeURIComponent(task.task_id)}/retry`)) : null,
            actions.includes("skip") ? button("Skip", { class: "skip", "data-task": task.task_id }, () => act(`Skip ${task.task_id}`, "POST", `/api/runs/${id}/tasks/${encodeURIComponent(task.task_id)}/skip`)) : null,
          ),
        );
        const selected = task.task_id === state.route.task;
        return el("tr", { class: selected ? "task selected" : "task", "data-task": task.task_id, "data-status": task.status }, ...cells);
      }),
    ),
  );
}

function renderTests(tests) {
  if (!tests) return el("p", { class: "muted small", text: "Loading…" });
  const parts = [];
  for (const culprit of tests.culprits || []) {
    parts.push(
      el("div", { class: "culprit-why notice notice-error" },
        el("strong", {}, "Culprit ", el("code", { text: culprit.task_id })), `: ${culprit.why}.`,
        culprit.failing_tests.length ? el("ul", { class: "failing" }, ...culprit.failing_tests.map((name) => el("li", {}, el("code", { text: name })))) : null),
    );
  }
  for (const conflict of tests.conflicts || []) {
    parts.push(el("p", { class: "small" }, el("code", { text: conflict.task_id }), ` conflicted in ${conflict.files.join(", ")}`));
  }
  const firstRed = (tests.runs || []).find((r) => r.verdict === "failed");
  for (const run of tests.runs || []) {
    const output = el("details", { class: "test-log", open: run === firstRed },
      el("summary", { class: "small" }, "output"), highlighted(run.output, run.failing_tests, tests.command));
    parts.push(
      el(
        "div",
        { class: "test-run", "data-verdict": run.verdict },
        el("div", { class: "test-head" },
          el("span", { class: `badge v-${run.verdict}`, text: run.verdict }),
          el("span", { class: "small", text: `${run.tested}, ` }),
          el("code", { text: short(run.commit) }),
          el("span", { class: "muted small", text: [run.exit_code !== null && run.exit_code !== undefined ? `exit ${run.exit_code}` : "", seconds(run.duration)].filter(Boolean).join(", ") })),
        run.failing_tests.length ? el("p", { class: "small" }, "Failing: ", ...run.failing_tests.map((name) => el("code", { class: "failing-test", text: name }))) : null,
        output,
      ),
    );
  }
  return el("div", { class: "test-output" }, el("p", { class: "muted small" }, "Command: ", el("code", { text: tests.command })), ...parts);
}

function highlighted(output, failing, command) {
  const pre = el("pre", { class: "log" });
  for (const line of String(output || "").split("\n")) {
    const hit = failing.some((name) => line.includes(name)) || /^(FAILED|ERROR|FAIL:|ERROR:|--- FAIL)/.test(line);
    pre.append(hit ? el("mark", { class: "fail-line", text: `${line}\n` }) : document.createTextNode(`${line}\n`));
  }
  return pre;
}

// --- one task: its log (attempts apart, live) and its diff ------------------------------

function renderPanel(run, task) {
  const id = encodeURIComponent(run.run_id);
  const attempts = (task.attempts || []).filter((a) => a.started_at);
  const chosen = state.log ? state.log.attempt : attempts.length ? attempts[attempts.length - 1].attempt : null;
  const tabs = el(
    "div",
    { class: "tabs" },
    el("button", { class: state.panelTab === "log" ? "tab selected" : "tab", id: "tab-log", onclick: () => { state.panelTab = "log"; render(); loadPanel(); } }, "Log"),
    el("button", { class: state.panelTab === "diff" ? "tab selected" : "tab", id: "tab-diff", onclick: () => { state.panelTab = "diff"; render(); loadPanel(); } }, "Diff"),
  );
  const attemptTabs = el(
    "div",
    { class: "attempts" },
    ...attempts.map((a) =>
      el("button", {
        class: a.attempt === chosen ? "attempt selected" : "attempt",
        "data-attempt": a.attempt,
        onclick: () => { state.log = null; state.diff = null; state.chosenAttempt = a.attempt; render(); loadPanel(); },
      }, `attempt ${a.attempt}${a.resolution ? " (resolution)" : ""}${a.interrupted ? " (interrupted)" : ""}`, " ", badge(a.status))),
  );
  const body = state.panelTab === "diff" ? renderDiff() : renderLog();
  return el(
    "aside",
    { class: "panel", id: "task-panel", "data-task": task.task_id },
    el("div", { class: "panel-head" },
      el("h4", {}, el("code", { text: task.task_id }), task.title && task.title !== task.task_id ? ` ${task.title}` : ""),
      badge(task.status),
      el("a", { href: `#/runs/${id}`, class: "close", "aria-label": "Close", text: "×" })),
    task.note ? el("p", { class: "small note", text: task.note }) : null,
    el("div", { class: "facts small" },
      fact("branch", code(task.branch)),
      fact("commit", code(short(task.commit))),
      fact("base", code(short(task.base_commit))),
      fact("worktree", code(task.worktree_path)),
      fact("duration", seconds(task.duration)),
      fact("depends on", (task.depends_on || []).join(", ")),
      task.agent ? fact("agent", [task.agent, task.agent_version, task.model].filter(Boolean).join(" ")) : null,
      task.agent ? fact("tokens", `${task.total_tokens_in.toLocaleString()} in, ${task.total_tokens_out.toLocaleString()} out`) : null,
      task.agent ? fact("cost", `$${task.total_cost_usd.toFixed(4)}`) : null),
    tabs,
    attempts.length > 1 || state.panelTab === "log" ? attemptTabs : null,
    body,
  );
}

function renderLog() {
  const log = state.log;
  const pre = el("pre", { class: "log task-log", id: "task-log", "data-attempt": log ? log.attempt : null, text: log ? log.text : "" });
  if (!log) return el("p", { class: "muted small", text: "No output yet." });
  requestAnimationFrame(() => { pre.scrollTop = pre.scrollHeight; });
  return el("div", {}, el("p", { class: "muted small", text: log.source === "events" ? "As recorded in the events." : "The whole log file." }), pre);
}

function renderDiff() {
  const diff = state.diff;
  if (!diff) return el("p", { class: "muted small", text: "Loading…" });
  if (diff.error) return el("p", { class: "muted small", id: "diff-none", text: diff.error });
  const data = diff.data;
  const pre = el("pre", { class: "log diff", id: "task-diff" });
  for (const line of data.patch.split("\n")) {
    const kind = line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : line.startsWith("@@") ? "hunk" : line.startsWith("diff ") ? "file" : "";
    pre.append(kind ? el("span", { class: `d-${kind}`, text: `${line}\n` }) : document.createTextNode(`${line}\n`));
  }
  return el(
    "div",
    {},
    el("p", { class: "muted small" }, data.source === "worktree" ? "Work in progress in its worktree, against " : "Its commit against ", el("code", { text: short(data.base) }), data.truncated ? " (cut short)" : ""),
    el("ul", { class: "files small" }, ...data.files.map((f) => el("li", {}, el("code", { text: f.path }), f.binary ? " binary" : [" ", el("span", { class: "d-add", text: `+${f.additions}` }), " ", el("span", { class: "d-del", text: `-${f.deletions}` })]))),
    pre,
  );
}

async function loadPanel() {
  const run = state.run;
  const task = run && (run.tasks || []).find((t) => t.task_id === state.route.task);
  if (!task) return;
  const attempts = (task.attempts || []).filter((a) => a.started_at).map((a) => a.attempt);
  if (!attempts.length) return;
  const attempt = attempts.includes(state.chosenAttempt) ? state.chosenAttempt : attempts[attempts.length - 1];
  if (state.panelTab === "diff") {
    if (!state.diff || state.diff.attempt !== attempt || state.diff.task !== task.task_id || working(task)) {
      try {
        const data = await api("GET", `/api/runs/${encodeURIComponent(run.run_id)}/tasks/${encodeURIComponent(task.task_id)}/diff?attempt=${attempt}`);
        state.diff = { run: run.run_id, task: task.task_id, attempt, data };
      } catch (error) {
        state.diff = { run: run.run_id, task: task.task_id, attempt, error: String(error.message || error) };
      }
      render();
    }
    return;
  }
  if (!state.log || state.log.attempt !== attempt || state.log.task !== task.task_id || state.log.run !== run.run_id) {
    state.log = { run: run.run_id, task: task.task_id, attempt, next: 0, text: "", source: task.agent ? "events" : null, busy: false, again: false };
  }
  await readLog();
}

// Reads the shown log from where it ended, as often as new output is announced; one read
// at a time, so slices come in order and nothing is shown twice.
async function readLog() {
  const log = state.log;
  if (!log) return;
  if (log.busy) {
    log.again = true;
    return;
  }
  log.busy = true;
  try {
    for (;;) {
      log.again = false;
      const source = log.source ? `&source=${log.source}` : "";
      const piece = await api("GET", `/api/runs/${encodeURIComponent(log.run)}/tasks/${encodeURIComponent(log.task)}/log?attempt=${log.attempt}&offset=${log.next}&limit=${LOG_CHUNK}${source}`);
      if (state.log !== log) return;
      log.text += piece.text;
      log.next = piece.next_offset;
      log.source = log.source || piece.source;
      const pre = document.getElementById("task-log");
      if (pre && pre.dataset.attempt === String(log.attempt)) {
        const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
        pre.append(document.createTextNode(piece.text));
        if (atBottom) pre.scrollTop = pre.scrollHeight;
      } else if (piece.text || !pre) {
        render();
      }
      if (piece.next_offset >= piece.size && !log.again) break;
    }
  } catch (error) {
    showMessage(`log: ${error.message || error}`);
  } finally {
    log.busy = false;
  }
}

// --- start ------------------------------------------------------------------------------------

async function start() {
  try {
    const spec = await api("GET", "/openapi.json");
    state.runWords = spec.components.schemas.RunSummary.properties.status.enum;
    state.eventTypes = spec.components.schemas.Event.properties.type.enum || [];
  } catch (error) {
    state.runWords = [];
  }
  const select = document.getElementById("run-status");
  for (const word of state.runWords) select.append(el("option", { value: word, text: word }));
  select.addEventListener("change", refresh);
  document.getElementById("run-search").addEventListener("input", renderRunList);
  document.getElementById("run-mine").addEventListener("change", renderRunList);
  window.addEventListener("hashchange", onRoute);
  render();
  await refresh();
  follow();
}

document.addEventListener("DOMContentLoaded", start);
