// The labrun dashboard: reads the JSON API every 2 s with the token the user
// enters (kept in sessionStorage, so it ends with the tab). A user's token
// sees their own jobs and batches (the API filters them by owner); the admin
// token sees everyone's, and the nodes, stats, users and audit log, which the
// page asks for only when GET /v1/whoami says the token is the admin's.
// No framework and no build step; every value from the API reaches the page
// through textContent, never as HTML (node names, results and logs come from
// untrusted programs and machines).

const TOKEN_KEY = "labrun.token";
const POLL_MS = 2000;
const RECENT_JOBS = 25;
const RECENT_BATCHES = 25;
const BATCH_STATES = ["queued", "running", "succeeded", "failed", "cancelled"];
const BATCH_TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const JOB_STATES = ["queued", "leased", "running", "succeeded", "failed", "cancelled"];
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
/** Without /v1/admin/stats the page counts job pages: this many per state at most. */
const COUNT_LIMIT = { queued: 500, leased: 500, running: 500 };
const COUNT_LIMIT_TERMINAL = 100;
/** After a 404 from /v1/admin/stats, ask again only every this many refreshes. */
const STATS_RETRY_EVERY = 15;
/** Audit entries per page (the API's limit; it pages with nextCursor). */
const AUDIT_PAGE = 20;

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** The token was refused (401), or cannot use the dashboard (an agent's): ask for one again. */
class AuthError extends Error {}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const view = {
  /** GET /v1/whoami's answer for the token: `{role: "admin"}` or `{role: "client", user}`. */
  who: /** @type {{role: string, user?: string} | null} */ (null),
  /** The token `who` is about. */
  whoToken: /** @type {string | null} */ (null),
  /** The audit page shown: the cursors of the pages before it, and its own (undefined: newest). */
  auditCursors: /** @type {(string | undefined)[]} */ ([]),
  auditCursor: /** @type {string | undefined} */ (undefined),
  auditNext: /** @type {string | undefined} */ (undefined),
  /** The entries last drawn, to redraw only a page that changed. */
  auditShown: "",
  selectedJob: /** @type {string | null} */ (null),
  selectedJobTerminal: false,
  selectedBatch: /** @type {string | null} */ (null),
  /** The open batch had ended when last read: its page no longer changes by itself. */
  selectedBatchEnded: false,
  statsSkip: 0,
  timer: 0,
  queue: Promise.resolve(),
};

// ---------------------------------------------------------------- API

async function api(method, path) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) throw new AuthError("Enter a token.");
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, "UNREACHABLE", `cannot reach the coordinator (${error.message})`);
  }
  if (response.status === 204) return null;
  const body = await response.json().catch(() => null);
  if (response.ok) return body;
  const code = body?.error?.code ?? `HTTP_${response.status}`;
  const message = body?.error?.message ?? (response.statusText || "no message");
  if (response.status === 401) {
    throw new AuthError(`The coordinator refused the token (401 ${code}: ${message}).`);
  }
  throw new ApiError(response.status, code, `${path}: ${response.status} ${code}: ${message}`);
}

// ---------------------------------------------------------------- formatting

function duration(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  // 2.7 s, 10 s: at most two decimals, none that are zero.
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(2))} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

function ago(iso) {
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (!Number.isFinite(seconds)) return "—";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

const pad = (n) => String(n).padStart(2, "0");

function localTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  const today = new Date().toDateString() === date.toDateString();
  return today
    ? time
    : `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${time}`;
}

/** What a job's outcome column says: ok, the error code, or that there is none yet. */
function outcomeText(job) {
  if (!job.outcome) return TERMINAL.has(job.state) ? "—" : "not yet";
  return job.outcome.ok ? "ok" : job.outcome.error.code;
}

// ---------------------------------------------------------------- DOM helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

const hidden = (text) => el("span", { class: "visually-hidden" }, text);

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** A <time> cell: readable text, exact ISO time on hover and for machines. */
function setTime(cell, iso, text) {
  let time = cell.firstElementChild;
  if (!time) {
    time = el("time");
    cell.replaceChildren(time);
  }
  if (iso) time.dateTime = iso;
  time.title = iso ?? "";
  setText(time, text);
}

/**
 * Puts one row per item into the table body in order, keeping the rows (and
 * the focused button in them) of items that stay, so a refresh never steals
 * focus or a click.
 */
function syncRows(tbody, items, key, columns, update) {
  const existing = new Map([...tbody.rows].map((row) => [row.dataset.key, row]));
  items.forEach((item, index) => {
    const id = key(item);
    let row = existing.get(id);
    existing.delete(id);
    if (!row) {
      row = el("tr", { dataset: { key: id } });
      for (let i = 0; i < columns; i++)
        row.append(el(i === 0 ? "th" : "td", i === 0 ? { scope: "row" } : {}));
    }
    update(row, item);
    if (tbody.rows[index] !== row) tbody.insertBefore(row, tbody.rows[index] ?? null);
  });
  for (const row of existing.values()) row.remove();
}

// ---------------------------------------------------------------- who is signed in

const isAdmin = () => view.who?.role === "admin";

/** The list query's owner part: the admin sees every user's work, a user their own. */
const owners = () => (isAdmin() ? "&all=true" : "");

/** Whom the token belongs to; one that is neither a user's nor the admin's cannot sign in. */
async function loadWho() {
  try {
    return await api("GET", "/v1/whoami");
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) {
      throw new AuthError(
        `This token is neither a user's token nor the admin token (403 ${error.code}).`,
      );
    }
    throw error;
  }
}

/**
 * Shows what the token may read: the admin's sections, or the note that
 * they need the admin token (the page never asks a user's token for them).
 */
function showWho(who) {
  const admin = who?.role === "admin";
  for (const section of document.querySelectorAll('[data-needs="admin"]')) {
    /** @type {HTMLElement} */ (section).hidden = !admin;
  }
  $("user-note").hidden = !who || admin;
  $("signed-in").hidden = !who;
  setText(
    $("signed-in"),
    !who ? "" : admin ? "Signed in with the admin token" : `Signed in as ${who.user}`,
  );
  setText($("queue-title"), who && !admin ? "Your jobs by state" : "Queue");
  setText($("queue-caption"), who && !admin ? "Your jobs by state" : "Jobs by state");
}

// ---------------------------------------------------------------- nodes

const NODE_ACTIONS = {
  drain: { method: "POST", suffix: "/drain", label: "Drain", done: "is draining" },
  resume: { method: "POST", suffix: "/resume", label: "Resume", done: "is ready again" },
  remove: { method: "DELETE", suffix: "", label: "Remove", done: "was removed" },
};

function actionsFor(state) {
  if (state === "ready") return ["drain", "remove"];
  if (state === "draining") return ["resume", "remove"];
  return ["remove"];
}

function renderNodes(nodes) {
  const tbody = $("nodes").tBodies[0];
  $("nodes-empty").hidden = nodes.length > 0;
  syncRows(
    tbody,
    nodes,
    (node) => node.id,
    9,
    (row, node) => {
      const [name, state, slots, running, heartbeat, version, done, failed, actions] = row.cells;
      setText(name, node.name);
      name.title = `host ${node.hostname} · id ${node.id}`;
      setText(state, node.state);
      state.className = `state state-${node.state}`;
      setText(slots, String(node.slots));
      setText(running, String(node.running));
      slots.className = running.className = "num";
      setTime(heartbeat, node.lastHeartbeatAt, ago(node.lastHeartbeatAt));
      setText(version, node.version);
      setText(done, String(node.jobsDone));
      setText(failed, String(node.jobsFailed));
      done.className = failed.className = "num";
      // Buttons are rebuilt only when the state (so the choice of actions) changes.
      if (actions.dataset.state !== node.state || actions.dataset.name !== node.name) {
        actions.dataset.state = node.state;
        actions.dataset.name = node.name;
        actions.replaceChildren(
          ...actionsFor(node.state).map((action) =>
            el(
              "button",
              { type: "button", dataset: { action, node: node.id, name: node.name } },
              NODE_ACTIONS[action].label,
              hidden(` node ${node.name}`),
            ),
          ),
        );
      }
    },
  );
}

async function nodeAction(button) {
  const { action, node, name } = button.dataset;
  const spec = NODE_ACTIONS[action];
  if (!spec) return;
  if (
    action === "remove" &&
    !window.confirm(
      `Remove node ${name}? Its token stops working and the jobs it holds are queued again.`,
    )
  ) {
    return;
  }
  button.disabled = true;
  try {
    await api(spec.method, `/v1/admin/nodes/${encodeURIComponent(node)}${spec.suffix}`);
    setText($("nodes-status"), `Node ${name} ${spec.done}.`);
    showBoardError("");
  } catch (error) {
    if (!handleAuth(error)) showBoardError(`${spec.label} node ${name} failed: ${error.message}`);
  } finally {
    button.disabled = false;
    refreshSoon();
  }
}

// ---------------------------------------------------------------- queue

/**
 * The queue from a `GET /v1/admin/stats` body (protocol ClusterStats): counts
 * by state, and how many jobs finished lately when it says so. Null when the
 * body does not hold the counts.
 */
export function queueFromStats(stats) {
  const jobs = stats?.jobs;
  if (!jobs || typeof jobs !== "object") return null;
  if (!JOB_STATES.every((state) => Number.isInteger(jobs[state]))) return null;
  const counts = Object.fromEntries(
    JOB_STATES.map((state) => [state, { n: jobs[state], more: false }]),
  );
  const finished = stats.finished;
  const lately =
    Number.isInteger(finished?.lastMinute) && Number.isInteger(finished?.lastHour)
      ? ` Finished in the last minute: ${finished.lastMinute}; in the last hour: ${finished.lastHour}.`
      : "";
  return { counts, source: `From /v1/admin/stats.${lately}` };
}

async function loadStats() {
  if (view.statsSkip > 0) {
    view.statsSkip--;
    return null;
  }
  try {
    return queueFromStats(await api("GET", "/v1/admin/stats"));
  } catch (error) {
    if (error instanceof AuthError) throw error;
    if (error instanceof ApiError && error.status === 404) view.statsSkip = STATS_RETRY_EVERY;
    return null;
  }
}

async function countsFromJobList() {
  const pages = await Promise.all(
    JOB_STATES.map((state) =>
      api(
        "GET",
        `/v1/jobs?state=${state}&limit=${COUNT_LIMIT[state] ?? COUNT_LIMIT_TERMINAL}${owners()}`,
      ),
    ),
  );
  return Object.fromEntries(
    JOB_STATES.map((state, i) => [
      state,
      { n: pages[i].jobs.length, more: Boolean(pages[i].nextCursor) },
    ]),
  );
}

async function loadQueue() {
  if (!isAdmin()) {
    return {
      counts: await countsFromJobList(),
      source:
        "Counted from your job list (single jobs; your batches' items are counted under Batches); a count ending in + means at least that many.",
    };
  }
  const fromStats = await loadStats();
  if (fromStats) return fromStats;
  return {
    counts: await countsFromJobList(),
    source:
      "Counted from the job list (/v1/admin/stats did not answer); a count ending in + means at least that many.",
  };
}

function renderQueue({ counts, source }) {
  syncRows(
    $("queue").tBodies[0],
    JOB_STATES,
    (state) => state,
    2,
    (row, state) => {
      const [name, count] = row.cells;
      setText(name, state);
      name.className = `state state-${state}`;
      const { n, more } = counts[state];
      setText(count, `${n}${more ? "+" : ""}`);
      count.className = "num";
    },
  );
  setText($("queue-source"), source);
}

// ---------------------------------------------------------------- jobs

function renderJobs(jobs) {
  $("jobs-empty").hidden = jobs.length > 0;
  syncRows(
    $("jobs").tBodies[0],
    jobs,
    (job) => job.id,
    7,
    (row, job) => {
      const [id, owner, state, outcome, took, node, created] = row.cells;
      if (!id.firstElementChild) {
        id.append(
          el(
            "button",
            { type: "button", class: "link", dataset: { job: job.id }, "aria-controls": "detail" },
            hidden("Job "),
            job.id,
          ),
        );
      }
      setText(owner, job.owner ?? "—");
      setText(state, job.state);
      state.className = `state state-${job.state}`;
      setText(outcome, outcomeText(job));
      outcome.className = job.outcome && !job.outcome.ok ? "code failed" : "code";
      setText(took, duration(job.outcome?.stats?.durationMs));
      took.className = "num";
      setText(node, job.node ?? "—");
      setTime(created, job.createdAt, localTime(job.createdAt));
      if (job.id === view.selectedJob) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    },
  );
}

function renderDetail(job) {
  view.selectedJobTerminal = TERMINAL.has(job.state);
  setText($("detail-title"), `Job ${job.id}`);
  const fields = [
    ["State", job.state],
    ["Outcome", outcomeText(job)],
    ["Owner", job.owner ?? "—"],
    ["Attempts", String(job.attempts)],
    ...(job.batchId
      ? [["Batch", batchButton(job.batchId, ` item ${job.index ?? "?"}`, "batch")]]
      : []),
    ["File", job.filename],
    ["Node", job.node ?? "—"],
    ["Created", job.createdAt],
    ["Started", job.startedAt ?? "—"],
    ["Finished", job.finishedAt ?? "—"],
    ["Duration", duration(job.outcome?.stats?.durationMs)],
    [
      "Limits",
      `timeout ${duration(job.limits.timeoutMs)}, memory ${job.limits.memoryMb} MB, ${job.limits.cpus} CPU`,
    ],
    [
      "Labels",
      Object.entries(job.labels)
        .map(([key, value]) => `${key}=${value}`)
        .join(", ") || "—",
    ],
  ];
  $("detail-fields").replaceChildren(
    ...fields.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]),
  );

  const outcome = job.outcome;
  $("detail-result").hidden = !outcome?.ok;
  $("detail-error").hidden = !outcome || outcome.ok;
  if (outcome?.ok) {
    setText($("detail-result-json"), JSON.stringify(outcome.result, null, 2) ?? "null");
  } else if (outcome) {
    setText($("detail-error-code"), outcome.error.code);
    setText($("detail-error-message"), outcome.error.message);
    $("detail-error-detail").hidden = !outcome.error.detail;
    setText($("detail-error-detail"), outcome.error.detail ?? "");
  }
  let logs = outcome ? outcome.logs || "(no output)" : "(the job has not finished)";
  if (outcome?.stats?.logsTruncated) logs += "\n[logs truncated]";
  setText($("detail-logs"), logs);
}

async function openJob(id) {
  view.selectedJob = id;
  view.selectedJobTerminal = false;
  for (const row of $("jobs").tBodies[0].rows) {
    if (row.dataset.key === id) row.setAttribute("aria-current", "true");
    else row.removeAttribute("aria-current");
  }
  try {
    renderDetail(await api("GET", `/v1/jobs/${encodeURIComponent(id)}`));
    $("detail").hidden = false;
    $("detail").focus();
  } catch (error) {
    if (!handleAuth(error)) showBoardError(`Job ${id}: ${error.message}`);
  }
}

function closeJob() {
  const id = view.selectedJob;
  view.selectedJob = null;
  $("detail").hidden = true;
  for (const row of $("jobs").tBodies[0].rows) row.removeAttribute("aria-current");
  const button = [...document.querySelectorAll("button[data-job]")].find(
    (b) => b.dataset.job === id,
  );
  button?.focus();
}

// ---------------------------------------------------------------- batches

/** A button that opens a batch's page. */
function batchButton(id, suffix = "", controls = "batch") {
  return el(
    "button",
    { type: "button", class: "link", dataset: { batch: id }, "aria-controls": controls },
    hidden("Batch "),
    id,
    suffix,
  );
}

const doneOf = (counts) => counts.succeeded + counts.failed + counts.cancelled;

/** "37 of 100 done (37%)". */
function progressText(batch) {
  const done = doneOf(batch.counts);
  return `${done} of ${batch.total} done (${Math.floor((100 * done) / batch.total)}%)`;
}

function setProgress(bar, batch) {
  bar.max = batch.total;
  bar.value = doneOf(batch.counts);
}

function renderBatches(batches) {
  $("batches-empty").hidden = batches.length > 0;
  syncRows(
    $("batches").tBodies[0],
    batches,
    (batch) => batch.id,
    10,
    (row, batch) => {
      const [id, owner, state, progress, ...rest] = row.cells;
      const created = rest.pop();
      if (!id.firstElementChild) id.append(batchButton(batch.id));
      setText(owner, batch.owner ?? "—");
      setText(state, batch.state);
      state.className = `state state-${batch.state}`;
      if (!progress.firstElementChild) {
        progress.append(
          el("progress", { "aria-label": `Batch ${batch.id} progress` }),
          el("span", { class: "progress-text" }),
        );
      }
      setProgress(progress.firstElementChild, batch);
      setText(progress.lastElementChild, progressText(batch));
      BATCH_STATES.forEach((s, i) => {
        setText(rest[i], String(batch.counts[s]));
        rest[i].className = "num";
      });
      setTime(created, batch.createdAt, localTime(batch.createdAt));
      if (batch.id === view.selectedBatch) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    },
  );
}

/**
 * Items per second from a `GET /v1/batches/:id/summary` body: over its
 * recent window, and over the whole run (items done from the first item's
 * start to the last one's end, or to now while it runs). Null where there
 * is nothing to divide.
 */
export function batchRates(summary) {
  const { batch, recent } = summary;
  const done = doneOf(batch.counts);
  const start = Date.parse(summary.firstStartedAt ?? "");
  const ended = BATCH_TERMINAL.has(batch.state);
  const end = Date.parse((ended ? summary.lastFinishedAt : summary.at) ?? "");
  const seconds = (end - start) / 1000;
  return {
    recent: ended ? null : recent.finished / (recent.windowMs / 1000),
    overall: Number.isFinite(seconds) && seconds > 0 && done > 0 ? done / seconds : null,
  };
}

const rate = (perSecond) =>
  perSecond === null ? "—" : `${perSecond >= 100 ? Math.round(perSecond) : perSecond.toFixed(1)}`;

/** The buckets from the first to the last that holds an item; none when no item has a time. */
export function histogramRows(durations) {
  const buckets = durations.buckets;
  const filled = buckets.map((b, i) => (b.succeeded + b.failed > 0 ? i : -1)).filter((i) => i >= 0);
  if (filled.length === 0) return [];
  const first = filled[0];
  const last = filled[filled.length - 1];
  return buckets.slice(first, last + 1).map((b, i) => {
    const above = first + i > 0 ? buckets[first + i - 1].upToMs : 0;
    const label =
      b.upToMs === null ? `over ${duration(above)}` : `${duration(above)} – ${duration(b.upToMs)}`;
    return { key: String(b.upToMs), label, succeeded: b.succeeded, failed: b.failed };
  });
}

function renderHistogram(durations) {
  const rows = histogramRows(durations);
  const most = Math.max(1, ...rows.map((r) => r.succeeded + r.failed));
  syncRows(
    $("batch-histogram").tBodies[0],
    rows,
    (r) => r.key,
    4,
    (row, r) => {
      const [label, succeeded, failed, bar] = row.cells;
      setText(label, r.label);
      setText(succeeded, String(r.succeeded));
      setText(failed, String(r.failed));
      succeeded.className = failed.className = "num";
      if (!bar.firstElementChild) {
        bar.setAttribute("aria-hidden", "true");
        bar.append(
          el("span", { class: "bar bar-succeeded" }),
          el("span", { class: "bar bar-failed" }),
        );
      }
      // CSSOM, not a style attribute: the CSP allows the one, not the other.
      bar.children[0].style.width = `${(100 * r.succeeded) / most}%`;
      bar.children[1].style.width = `${(100 * r.failed) / most}%`;
    },
  );
  setText(
    $("batch-histogram-note"),
    durations.count === 0
      ? "No item has finished yet."
      : `${durations.count} items that ran to an end (cancelled ones are not counted): ` +
          `shortest ${duration(durations.minMs)}, longest ${duration(durations.maxMs)}, as their agents measured them.`,
  );
}

function renderFailed(failed, batch) {
  const counts = batch.counts;
  syncRows(
    $("batch-failed").tBodies[0],
    failed.items,
    (item) => String(item.index),
    4,
    (row, item) => {
      const [index, job, code, message] = row.cells;
      setText(index, String(item.index));
      index.className = "num";
      if (!job.firstElementChild) {
        job.append(
          el(
            "button",
            {
              type: "button",
              class: "link",
              dataset: { job: item.jobId },
              "aria-controls": "detail",
            },
            hidden("Job "),
            item.jobId,
          ),
        );
      }
      setText(code, item.error.code);
      code.className = "code failed";
      setText(message, item.error.message);
    },
  );
  let note = "";
  if (counts.failed === 0) note = "No item has failed.";
  else if (failed.more) {
    note = `The first ${failed.items.length} of ${counts.failed} failed items by index; every one is in the results (labrun batch results ${batch.id}).`;
  }
  setText($("batch-failed-note"), note);
}

function renderBatch(summary) {
  const { batch } = summary;
  view.selectedBatchEnded = BATCH_TERMINAL.has(batch.state);
  setText($("batch-title"), `Batch ${batch.id}`);
  setProgress($("batch-progress"), batch);
  setText($("batch-progress-text"), progressText(batch));
  const rates = batchRates(summary);
  const fields = [
    ["State", batch.state],
    ["Owner", batch.owner ?? "—"],
    ["Items", String(batch.total)],
    [
      "Items/s",
      rates.recent === null
        ? `${rate(rates.overall)} (from the first item's start to the last one's end)`
        : `${rate(rates.recent)} in the last ${summary.recent.windowMs / 1000} s; ${rate(rates.overall)} since the first item started`,
    ],
    ["File", batch.filename],
    ["Created", batch.createdAt],
    ["Finished", batch.finishedAt ?? "—"],
    [
      "Limits",
      `timeout ${duration(batch.limits.timeoutMs)}, memory ${batch.limits.memoryMb} MB, ${batch.limits.cpus} CPU`,
    ],
    ["At once", batch.maxParallel ? `at most ${batch.maxParallel}` : "no cap"],
    ["Retries", String(batch.retries)],
    ["Containers", batch.isolate ? "one per item (isolate)" : "reused between items"],
  ];
  $("batch-fields").replaceChildren(
    ...fields.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]),
  );
  $("batch-cancel").hidden = BATCH_TERMINAL.has(batch.state);
  $("batch-retry").hidden = batch.counts.failed === 0;
  syncRows(
    $("batch-counts").tBodies[0],
    BATCH_STATES,
    (state) => state,
    2,
    (row, state) => {
      const [name, count] = row.cells;
      setText(name, state);
      name.className = `state state-${state}`;
      setText(count, String(batch.counts[state]));
      count.className = "num";
    },
  );
  renderHistogram(summary.durations);
  renderFailed(summary.failed, batch);
}

const summaryPath = (id) => `/v1/batches/${encodeURIComponent(id)}/summary`;

async function openBatch(id) {
  if (view.selectedBatch !== id) {
    for (const body of ["batch-counts", "batch-histogram", "batch-failed"]) {
      $(body).tBodies[0].replaceChildren();
    }
    setText($("batch-status"), "");
  }
  view.selectedBatch = id;
  view.selectedBatchEnded = false;
  for (const row of $("batches").tBodies[0].rows) {
    if (row.dataset.key === id) row.setAttribute("aria-current", "true");
    else row.removeAttribute("aria-current");
  }
  try {
    renderBatch(await api("GET", summaryPath(id)));
    $("batch").hidden = false;
    $("batch").focus();
  } catch (error) {
    if (!handleAuth(error)) showBoardError(`Batch ${id}: ${error.message}`);
  }
}

function closeBatch() {
  const id = view.selectedBatch;
  view.selectedBatch = null;
  $("batch").hidden = true;
  for (const row of $("batches").tBodies[0].rows) row.removeAttribute("aria-current");
  const button = [...$("batches").querySelectorAll("button[data-batch]")].find(
    (b) => b.dataset.batch === id,
  );
  button?.focus();
}

const BATCH_ACTIONS = {
  cancel: {
    label: "Cancel",
    confirm: (id) =>
      `Cancel batch ${id}? Its queued items are cancelled at once and its running ones stopped.`,
    done: (id) => `Batch ${id} was cancelled.`,
  },
  retry: {
    label: "Retry",
    done: (id, body) => `Queued ${body.requeued} failed items of batch ${id} again.`,
  },
};

async function batchAction(action, button) {
  const id = view.selectedBatch;
  const spec = BATCH_ACTIONS[action];
  if (!id || !spec) return;
  if (spec.confirm && !window.confirm(spec.confirm(id))) return;
  button.disabled = true;
  try {
    const body = await api("POST", `/v1/batches/${encodeURIComponent(id)}/${action}`);
    setText($("batch-status"), spec.done(id, body));
    showBoardError("");
    view.selectedBatchEnded = false;
  } catch (error) {
    if (!handleAuth(error)) showBoardError(`${spec.label} batch ${id} failed: ${error.message}`);
  } finally {
    button.disabled = false;
    refreshSoon();
  }
}

// ---------------------------------------------------------------- users (admin)

/** Container-seconds, as the users table shows them: "0 s", "4.25 s", "310 s", "2.5 h". */
export function containerSeconds(seconds) {
  if (!Number.isFinite(seconds)) return "—";
  if (seconds >= 3600) return `${Number((seconds / 3600).toFixed(1))} h`;
  return `${Number(seconds.toFixed(seconds < 10 ? 2 : 0))} s`;
}

/** A share of 0…1 as a percentage: "0%", "37.5%". */
export const shareText = (share) => `${Number((100 * share).toFixed(1))}%`;

const quotaText = (quota) => (quota === undefined ? "—" : String(quota));

function renderUsers(users) {
  syncRows(
    $("users").tBodies[0],
    users,
    (user) => user.name,
    9,
    (row, user) => {
      const [name, created, running, queued, usage, share, weight, maxRunning, maxQueued] =
        row.cells;
      setText(name, user.name);
      setTime(created, user.createdAt, localTime(user.createdAt));
      const numbers = [
        [running, String(user.running)],
        [queued, String(user.queued)],
        [usage, containerSeconds(user.usage)],
        [share, shareText(user.share)],
        [weight, String(user.weight)],
        [maxRunning, quotaText(user.maxRunning)],
        [maxQueued, quotaText(user.maxQueued)],
      ];
      for (const [cell, text] of numbers) {
        setText(cell, text);
        cell.className = "num";
      }
      usage.title = `${user.usage} container-seconds; usage ÷ weight = ${user.priority}`;
    },
  );
}

// ---------------------------------------------------------------- audit log (admin)

/** An audit entry's details as text: "maxQueued=9, weight=2", or "—" when it has none. */
export function auditDetails(details) {
  const parts = Object.entries(details ?? {}).map(
    ([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`,
  );
  return parts.join(", ") || "—";
}

const auditPath = (cursor) =>
  `/v1/admin/audit?limit=${AUDIT_PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;

function renderAudit(page) {
  view.auditNext = page.nextCursor;
  const first = view.auditCursors.length * AUDIT_PAGE;
  $("audit-empty").hidden = page.entries.length > 0 || first > 0;
  $("audit-newer").hidden = first === 0;
  $("audit-older").hidden = !page.nextCursor;
  setText(
    $("audit-page"),
    page.entries.length === 0 ? "" : `Entries ${first + 1}–${first + page.entries.length}.`,
  );
  // Entries have no id of their own and no controls: the page is redrawn when it changed.
  const shown = JSON.stringify(page.entries);
  if (shown === view.auditShown) return;
  view.auditShown = shown;
  $("audit").tBodies[0].replaceChildren(
    ...page.entries.map((entry) => {
      const when = el("th", { scope: "row" });
      setTime(when, entry.at, localTime(entry.at));
      return el(
        "tr",
        {},
        when,
        el("td", {}, entry.actor),
        el("td", { class: "code" }, entry.action),
        el("td", {}, entry.target),
        el("td", {}, auditDetails(entry.details)),
      );
    }),
  );
}

/** One page older (+1) or newer (-1) in the audit log. */
function turnAuditPage(step) {
  if (step > 0 && view.auditNext) {
    view.auditCursors.push(view.auditCursor);
    view.auditCursor = view.auditNext;
  } else if (step < 0 && view.auditCursors.length > 0) {
    view.auditCursor = view.auditCursors.pop();
  } else {
    return;
  }
  refreshSoon();
}

// ---------------------------------------------------------------- refresh loop

function setStatus(text) {
  setText($("status"), text);
}

function showBoardError(text) {
  setText($("board-error"), text);
}

/**
 * The reads of one refresh, by what the token may read: a user's token gets
 * only the job and batch routes (its own work), the admin token everything.
 * `fresh` drops an answer that comes back after the token changed.
 */
function refreshTasks(fresh) {
  const state = /** @type {HTMLSelectElement} */ ($("jobs-state")).value;
  const jobsPath = `/v1/jobs?limit=${RECENT_JOBS}${state ? `&state=${state}` : ""}${owners()}`;
  const tasks = [
    api("GET", jobsPath).then(fresh((body) => renderJobs(body.jobs))),
    loadQueue().then(fresh(renderQueue)),
    api("GET", `/v1/batches?limit=${RECENT_BATCHES}${owners()}`).then(
      fresh((body) => renderBatches(body.batches)),
    ),
  ];
  if (isAdmin()) {
    const cursor = view.auditCursor;
    tasks.push(
      api("GET", "/v1/admin/nodes").then(fresh((body) => renderNodes(body.nodes))),
      api("GET", "/v1/admin/users").then(fresh((body) => renderUsers(body.users))),
      api("GET", auditPath(cursor)).then(
        fresh((page) => {
          if (view.auditCursor === cursor) renderAudit(page);
        }),
      ),
    );
  }
  const batch = view.selectedBatch;
  if (batch && !view.selectedBatchEnded) {
    tasks.push(
      api("GET", summaryPath(batch)).then(
        fresh((body) => {
          if (view.selectedBatch === batch) renderBatch(body);
        }),
      ),
    );
  }
  const job = view.selectedJob;
  if (job && !view.selectedJobTerminal) {
    tasks.push(
      api("GET", `/v1/jobs/${encodeURIComponent(job)}`).then(
        fresh((body) => {
          if (view.selectedJob === job) renderDetail(body);
        }),
      ),
    );
  }
  return tasks;
}

/** One refresh of every section; a section that fails keeps what it showed. */
async function refresh() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return;
  // After a sign-out (or another sign-in) nothing the old token read is shown.
  const current = () => sessionStorage.getItem(TOKEN_KEY) === token;
  const fresh =
    (render) =>
    (...args) => {
      if (current()) render(...args);
    };
  let failures;
  try {
    if (view.whoToken !== token) {
      const who = await loadWho();
      if (!current()) return;
      view.who = who;
      view.whoToken = token;
      showWho(who);
    }
    failures = (await Promise.allSettled(refreshTasks(fresh)))
      .filter((result) => result.status === "rejected")
      .map((result) => result.reason);
  } catch (error) {
    failures = [error];
  }
  if (!current()) return;
  const auth = failures.find((error) => error instanceof AuthError);
  if (auth) {
    handleAuth(auth);
    return;
  }
  if (failures.length > 0) {
    showBoardError(
      `Could not refresh: ${[...new Set(failures.map((error) => error.message))].join("; ")}. Retrying every ${POLL_MS / 1000} s.`,
    );
    setStatus(`Refresh failed at ${localTime(new Date().toISOString())}.`);
  } else {
    showBoardError("");
    setStatus(
      `Updated ${localTime(new Date().toISOString())}; refreshes every ${POLL_MS / 1000} s.`,
    );
  }
}

/** Refreshes now (after any refresh under way), then every POLL_MS while signed in. */
function refreshSoon() {
  clearTimeout(view.timer);
  view.queue = view.queue.then(async () => {
    if (!document.hidden) await refresh();
    clearTimeout(view.timer);
    if (sessionStorage.getItem(TOKEN_KEY)) view.timer = setTimeout(refreshSoon, POLL_MS);
  });
  return view.queue;
}

// ---------------------------------------------------------------- sign in / out

function showLogin(message) {
  clearTimeout(view.timer);
  sessionStorage.removeItem(TOKEN_KEY);
  $("board").hidden = true;
  $("sign-out").hidden = true;
  // Nothing the old token could read stays on the page.
  for (const id of [
    "nodes",
    "queue",
    "jobs",
    "batches",
    "batch-counts",
    "batch-histogram",
    "batch-failed",
    "users",
    "audit",
  ]) {
    $(id).tBodies[0].replaceChildren();
  }
  view.who = null;
  view.whoToken = null;
  showWho(null);
  view.auditCursors = [];
  view.auditCursor = undefined;
  view.auditShown = "";
  view.selectedJob = null;
  view.selectedBatch = null;
  $("detail").hidden = true;
  $("batch").hidden = true;
  setText($("batch-status"), "");
  $("login").hidden = false;
  setText($("login-error"), message);
  setText($("nodes-status"), "");
  showBoardError("");
  setStatus(message ? "Signed out: the token was not accepted." : "Not signed in.");
  $("token").focus();
}

/** Sends the user back to the token form when the error says the token is wrong. */
function handleAuth(error) {
  if (!(error instanceof AuthError)) return false;
  showLogin(`${error.message} Enter a token again.`);
  return true;
}

function showBoard() {
  $("login").hidden = true;
  $("board").hidden = false;
  $("sign-out").hidden = false;
  setStatus("Loading…");
  refreshSoon();
}

function main() {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = /** @type {HTMLInputElement} */ ($("token"));
    const token = input.value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    input.value = "";
    setText($("login-error"), "");
    showBoard();
  });
  $("sign-out").addEventListener("click", () => showLogin(""));
  $("nodes").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button) nodeAction(button);
  });
  $("jobs").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-job]");
    if (button) openJob(button.dataset.job);
  });
  $("detail-close").addEventListener("click", closeJob);
  // Batch buttons are in the batch list and in a job's detail; job buttons also in a batch's failed items.
  for (const id of ["batches", "detail"]) {
    $(id).addEventListener("click", (event) => {
      const button = event.target.closest("button[data-batch]");
      if (button) openBatch(button.dataset.batch);
    });
  }
  $("batch-failed").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-job]");
    if (button) openJob(button.dataset.job);
  });
  $("batch-close").addEventListener("click", closeBatch);
  $("batch-cancel").addEventListener("click", (event) =>
    batchAction("cancel", event.currentTarget),
  );
  $("batch-retry").addEventListener("click", (event) => batchAction("retry", event.currentTarget));
  $("audit-older").addEventListener("click", () => turnAuditPage(1));
  $("audit-newer").addEventListener("click", () => turnAuditPage(-1));
  $("jobs-filter").addEventListener("submit", (event) => event.preventDefault());
  $("jobs-state").addEventListener("change", () => refreshSoon());
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && sessionStorage.getItem(TOKEN_KEY)) refreshSoon();
  });

  if (sessionStorage.getItem(TOKEN_KEY)) showBoard();
  else showLogin("");
}

// Also loaded by the unit test in Node, which only wants the pure helpers.
if (typeof document !== "undefined") main();
