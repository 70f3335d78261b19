// The master's web UI: frameworks, agents and tasks from this replica's /state, refreshed every
// few seconds, and a task's sandbox read from its agent with JSONP (as Mesos's UI reads agents,
// which serve another origin). Data only ever reaches the page as text, never as markup.
"use strict";

const REFRESH_MS = 3000;
const TAIL_BYTES = 64 * 1024;
const FOLLOW_MS = 1000;
const FOLLOW_KEPT_CHARS = 4 * TAIL_BYTES; // a followed file keeps its last TAIL_BYTES past this
const JSONP_TIMEOUT_MS = 10000;
const ACTIVE_STATES = ["TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING"];
const FAILED_STATES = [
  "TASK_FAILED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR",
  "TASK_UNREACHABLE",
];
const NO_LOG_FILE = "Not logging to a file: start the daemon with --log_dir or --external_log_file.";
const OVERVIEW_ROWS = 50; // active tasks listed on the overview (the Tasks view lists all)

// -- pure helpers (node runs them in tests) ------------------------------------------------

function agentUrl(agent) {
  // `slave(1)@ip:port` says where an agent is.
  const address = String(agent.pid || "").split("@")[1] || `${agent.hostname}:${agent.port}`;
  return `http://${address}`;
}

function amount(resources, name) {
  const value = Number((resources || {})[name] || 0);
  return Math.round(value * 1000) / 1000;
}

function usage(used, total, name, unit) {
  const suffix = unit ? ` ${unit}` : "";
  return `${amount(used, name)} / ${amount(total, name)}${suffix}`;
}

function allTasks(state) {
  const out = [];
  const frameworks = [...(state.frameworks || []), ...(state.completed_frameworks || [])];
  for (const framework of frameworks) {
    for (const list of ["tasks", "unreachable_tasks", "completed_tasks"]) {
      for (const task of framework[list] || []) {
        out.push({ task, framework });
      }
    }
  }
  return out;
}

function stateCounts(state) {
  const counts = {};
  for (const { task } of allTasks(state)) {
    counts[task.state] = (counts[task.state] || 0) + 1;
  }
  return counts;
}

function clusterTotals(state) {
  const total = {}, used = {};
  for (const agent of state.slaves || []) {
    for (const name of ["cpus", "mem", "disk", "gpus"]) {
      total[name] = (total[name] || 0) + amount(agent.resources, name);
      used[name] = (used[name] || 0) + amount(agent.used_resources, name);
    }
  }
  return { total, used };
}

function lastStatus(task) {
  const statuses = task.statuses || [];
  return statuses.length ? statuses[statuses.length - 1] : {};
}

function health(task) {
  const healthy = lastStatus(task).healthy;
  return healthy === undefined ? "" : healthy ? "healthy" : "unhealthy";
}

function startedAt(task) {
  const statuses = task.statuses || [];
  return statuses.length ? statuses[0].timestamp : undefined;
}

function findExecutor(agentState, frameworkId, taskId) {
  // Task objects say `id`; queued TaskInfos say `task_id.value`.
  const idOf = (task) => task.id || (task.task_id && task.task_id.value);
  const frameworks = [...(agentState.frameworks || []), ...(agentState.completed_frameworks || [])];
  let found = null;
  for (const framework of frameworks) {
    if (framework.id !== frameworkId) continue;
    for (const executor of [...(framework.executors || []), ...(framework.completed_executors || [])]) {
      for (const list of ["tasks", "queued_tasks", "completed_tasks"]) {
        if ((executor[list] || []).some((task) => idOf(task) === taskId)) found = executor;
      }
    }
  }
  return found;
}

function parseRoute(hash) {
  const parts = (hash || "").replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  return { view: parts[0] || "overview", args: parts.slice(1) };
}

function when(seconds) {
  if (!seconds) return "";
  return new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function sizeText(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = Number(bytes) || 0, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

// What a followed file's view reads next, in byte offsets (never characters, which multi-byte
// text would skew): `end` is where the shown text ends, `size` what the agent reports now.
// A file that shrank was truncated or replaced, and one that grew by more than `tail` bytes
// shows only its last `tail`: either way the view starts again (`restart`).
function nextRead(end, size, tail) {
  if (size === end) return null;
  const from = size < end ? Math.max(0, size - tail) : Math.max(end, size - tail);
  return { from, length: size - from, restart: from !== end };
}

if (typeof module !== "undefined") {
  module.exports = {
    agentUrl, amount, usage, allTasks, stateCounts, clusterTotals, lastStatus, health,
    startedAt, findExecutor, parseRoute, when, sizeText, nextRead,
  };
}

// -- the page ------------------------------------------------------------------------------

if (typeof document !== "undefined") {
  let state = null;
  let roles = null; // this replica's /roles, read while the Roles view is shown
  let updatedAt = "";
  let filter = "";
  let jsonpCount = 0;

  const main = document.getElementById("main");
  const status = document.getElementById("status");
  const logLink = document.getElementById("log-link");

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name === "onclick" || name === "oninput") node[name] = value;
      else if (value !== undefined && value !== null) node.setAttribute(name, value);
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function link(hash, text) {
    return el("a", { href: hash }, text);
  }

  function table(headers, rows) {
    return el("table", {},
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c))))));
  }

  function card(value, label) {
    return el("div", { class: "card" }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
  }

  function stateCell(task) {
    return el("span", { class: `state ${task.state}` }, task.state.replace("TASK_", ""));
  }

  function taskHash(task) {
    return `#/tasks/${encodeURIComponent(task.framework_id)}/${encodeURIComponent(task.id)}`;
  }

  function agentsById() {
    return Object.fromEntries((state.slaves || []).map((agent) => [agent.id, agent]));
  }

  function taskRows(entries) {
    const agents = agentsById();
    return entries.map(({ task, framework }) => [
      link(taskHash(task), task.id), task.name, stateCell(task), health(task),
      link(`#/frameworks/${encodeURIComponent(framework.id)}`, framework.name || framework.id),
      agents[task.slave_id] ? link(`#/agents/${encodeURIComponent(task.slave_id)}`, agents[task.slave_id].hostname) : task.slave_id,
      when(startedAt(task)),
    ]);
  }

  const TASK_HEADERS = ["ID", "Name", "State", "Health", "Framework", "Agent", "Started"];

  function overview() {
    const counts = stateCounts(state);
    const { total, used } = clusterTotals(state);
    const agents = state.slaves || [];
    const active = allTasks(state).filter(({ task }) => ACTIVE_STATES.includes(task.state));
    return [
      el("h1", {}, state.cluster ? `Cluster ${state.cluster}` : "Cluster"),
      el("div", { class: "cards" },
        card(`${agents.filter((a) => a.active).length} / ${agents.length}`, "agents active"),
        card((state.frameworks || []).length, "frameworks"),
        card(counts.TASK_RUNNING || 0, "tasks running"),
        card((counts.TASK_STAGING || 0) + (counts.TASK_STARTING || 0), "tasks starting"),
        card(counts.TASK_FINISHED || 0, "finished"),
        card(FAILED_STATES.reduce((sum, name) => sum + (counts[name] || 0), 0), "failed or lost"),
        card(counts.TASK_KILLED || 0, "killed"),
        card(usage(used, total, "cpus"), "CPUs used"),
        total.gpus ? card(usage(used, total, "gpus"), "GPUs used") : null,
        card(usage(used, total, "mem", "MB"), "memory used"),
        card(usage(used, total, "disk", "MB"), "disk used")),
      el("dl", {},
        el("dt", {}, "Leader"), el("dd", {}, state.leader || "none known"),
        el("dt", {}, "This replica"), el("dd", {}, state.pid || ""),
        el("dt", {}, "Version"), el("dd", {}, state.version || ""),
        el("dt", {}, "Leader elected"), el("dd", {}, when(state.elected_time) || "no leader yet")),
      el("h2", {}, `Active tasks (${active.length}${active.length > OVERVIEW_ROWS ? `, the first ${OVERVIEW_ROWS} shown` : ""})`),
      active.length ? table(TASK_HEADERS, taskRows(active.slice(0, OVERVIEW_ROWS))) : el("p", { class: "muted" }, "No active tasks."),
    ];
  }

  function frameworkLink(f) {
    return link(`#/frameworks/${encodeURIComponent(f.id)}`, f.id);
  }

  function frameworks() {
    const current = state.frameworks || [];
    const completed = state.completed_frameworks || [];
    // A framework that is not connected may still fail over to a new scheduler until its
    // failover timeout: "disconnected", not gone. Completed ones are gone for good.
    const rows = current.map((f) => [
      frameworkLink(f), f.name, f.user, (f.roles || [f.role]).join(", "),
      f.active ? "active" : (f.connected ? "inactive" : "disconnected"),
      (f.tasks || []).length, amount(f.used_resources, "cpus"), amount(f.used_resources, "mem"),
      when(f.registered_time),
    ]);
    const completedRows = completed.map((f) => [
      frameworkLink(f), f.name, f.user, (f.roles || [f.role]).join(", "),
      (f.completed_tasks || []).length, when(f.registered_time), when(f.unregistered_time),
    ]);
    return [el("h1", {}, `Frameworks (${current.length})`),
      rows.length ? table(["ID", "Name", "User", "Roles", "Status", "Active tasks", "CPUs", "Mem (MB)", "Registered"], rows)
        : el("p", { class: "muted" }, "No frameworks."),
      el("h2", {}, `Completed frameworks (${completed.length})`),
      completedRows.length ? table(["ID", "Name", "User", "Roles", "Tasks", "Registered", "Unregistered"], completedRows)
        : el("p", { class: "muted" }, "None.")];
  }

  function framework(id) {
    const found = [...(state.frameworks || []), ...(state.completed_frameworks || [])].find((f) => f.id === id);
    if (!found) return [el("h1", {}, "Framework not found"), el("p", {}, id)];
    const entries = allTasks(state).filter(({ framework }) => framework.id === id);
    return [
      el("h1", {}, `Framework ${found.name || id}`),
      el("dl", {},
        el("dt", {}, "ID"), el("dd", {}, found.id),
        el("dt", {}, "User"), el("dd", {}, found.user),
        el("dt", {}, "Roles"), el("dd", {}, (found.roles || [found.role]).join(", ")),
        el("dt", {}, "Hostname"), el("dd", {}, found.hostname),
        el("dt", {}, "Failover timeout"), el("dd", {}, `${found.failover_timeout} s`),
        el("dt", {}, "Checkpoint"), el("dd", {}, String(found.checkpoint)),
        el("dt", {}, "Registered"), el("dd", {}, when(found.registered_time)),
        el("dt", {}, "Resources used"), el("dd", {}, `${amount(found.used_resources, "cpus")} CPUs, ${amount(found.used_resources, "mem")} MB`)),
      el("h2", {}, `Tasks (${entries.length})`),
      table(TASK_HEADERS, taskRows(entries)),
    ];
  }

  function agents() {
    const rows = (state.slaves || []).map((a) => [
      link(`#/agents/${encodeURIComponent(a.id)}`, a.id), a.hostname, agentStatus(a),
      usage(a.used_resources, a.resources, "cpus"), usage(a.used_resources, a.resources, "mem"),
      usage(a.used_resources, a.resources, "disk"), a.version, when(a.registered_time),
    ]);
    return [el("h1", {}, "Agents"),
      table(["ID", "Hostname", "Status", "CPUs", "Mem (MB)", "Disk (MB)", "Version", "Registered"], rows)];
  }

  function agentStatus(a) {
    if (a.drain_info) return a.drain_info.state.toLowerCase(); // draining, drained
    if (a.deactivated) return "deactivated";
    return a.active ? "active" : "inactive";
  }

  function agent(id) {
    const found = agentsById()[id];
    if (!found) return [el("h1", {}, "Agent not found"), el("p", {}, id)];
    const entries = allTasks(state).filter(({ task }) => task.slave_id === id);
    const attributes = Object.entries(found.attributes || {}).map(([k, v]) => `${k}:${v}`).join("; ");
    return [
      el("h1", {}, `Agent ${found.hostname}`),
      el("dl", {},
        el("dt", {}, "ID"), el("dd", {}, found.id),
        el("dt", {}, "Address"), el("dd", {}, el("a", { href: agentUrl(found) + "/state" }, agentUrl(found))),
        el("dt", {}, "CPUs"), el("dd", {}, usage(found.used_resources, found.resources, "cpus")),
        el("dt", {}, "Memory"), el("dd", {}, usage(found.used_resources, found.resources, "mem", "MB")),
        el("dt", {}, "Disk"), el("dd", {}, usage(found.used_resources, found.resources, "disk", "MB")),
        el("dt", {}, "Attributes"), el("dd", {}, attributes || "none"),
        el("dt", {}, "Registered"), el("dd", {}, when(found.registered_time)),
        el("dt", {}, "Log"), el("dd", {}, link(`#/agents/${encodeURIComponent(id)}/log`, "agent log"))),
      el("h2", {}, "Reservations"),
      reservations(found),
      el("h2", {}, `Tasks (${entries.length})`),
      table(TASK_HEADERS, taskRows(entries)),
    ];
  }

  // Reserved resources by role, static and dynamic, with the persistent volumes made of them.
  function reservations(found) {
    const roles = Object.entries(found.reserved_resources || {});
    if (!roles.length) return el("p", {}, "none");
    const full = found.reserved_resources_full || {};
    const volumes = (role) => (full[role] || [])
      .filter((r) => r.disk && r.disk.persistence)
      .map((r) => `${r.disk.persistence.id} (${Number(r.scalar.value)} MB at ${r.disk.volume.container_path})`)
      .join(", ") || "none";
    return table(["Role", "CPUs", "Mem (MB)", "Disk (MB)", "Persistent volumes"], roles.map(([role, r]) => [
      role, amount(r, "cpus"), amount(r, "mem"), amount(r, "disk"), volumes(role),
    ]));
  }

  function tasks() {
    const wanted = filter.toLowerCase();
    const entries = allTasks(state).filter(({ task }) =>
      !wanted || [task.id, task.name, task.state].some((v) => String(v || "").toLowerCase().includes(wanted)));
    const input = el("input", { class: "filter", placeholder: "filter by id, name or state", value: filter });
    input.oninput = () => { filter = input.value; render(); };
    return [el("h1", {}, `Tasks (${entries.length})`), input, table(TASK_HEADERS, taskRows(entries))];
  }

  function findTask(frameworkId, taskId) {
    return allTasks(state).find(({ task, framework }) => framework.id === frameworkId && task.id === taskId);
  }

  function task(frameworkId, taskId) {
    const entry = findTask(frameworkId, taskId);
    if (!entry) return [el("h1", {}, "Task not found"), el("p", {}, taskId)];
    const agentInfo = agentsById()[entry.task.slave_id];
    const sandbox = el("div", { id: "sandbox" }, el("p", { class: "muted" }, "Looking for the sandbox…"));
    if (agentInfo) showSandbox(sandbox, agentInfo, frameworkId, taskId);
    else sandbox.replaceChildren(el("p", { class: "muted" }, "Its agent is not registered."));
    return [el("div", { id: "task-details" }, ...taskDetails(entry)), el("h2", {}, "Sandbox"), sandbox];
  }

  // What a refresh redraws on a task page: all but the sandbox, which the user may be reading.
  function taskDetails(entry) {
    const found = entry.task;
    const frameworkId = entry.framework.id;
    const agentInfo = agentsById()[found.slave_id];
    return [
      el("h1", {}, `Task ${found.name || found.id}`),
      el("dl", {},
        el("dt", {}, "ID"), el("dd", {}, found.id),
        el("dt", {}, "State"), el("dd", {}, stateCell(found), " ", health(found)),
        el("dt", {}, "Framework"), el("dd", {}, link(`#/frameworks/${encodeURIComponent(frameworkId)}`, entry.framework.name || frameworkId)),
        el("dt", {}, "Agent"), el("dd", {}, agentInfo ? link(`#/agents/${encodeURIComponent(found.slave_id)}`, agentInfo.hostname) : found.slave_id),
        el("dt", {}, "Executor"), el("dd", {}, found.executor_id || "(command executor)"),
        el("dt", {}, "Resources"), el("dd", {}, `${amount(found.resources, "cpus")} CPUs, ${amount(found.resources, "mem")} MB`),
        el("dt", {}, "Role"), el("dd", {}, found.role || "")),
      el("h2", {}, "Statuses"),
      table(["State", "Time", "Healthy"], (found.statuses || []).map((s) => [
        el("span", { class: `state ${s.state}` }, s.state), when(s.timestamp),
        s.healthy === undefined ? "" : String(s.healthy)])),
    ];
  }

  function offers() {
    const agents = agentsById();
    const rows = [];
    for (const framework of state.frameworks || []) {
      for (const offer of framework.offers || []) {
        const agent = agents[offer.slave_id];
        rows.push([
          offer.id, frameworkLink(framework),
          agent ? link(`#/agents/${encodeURIComponent(offer.slave_id)}`, agent.hostname) : offer.slave_id,
          (offer.allocation_info || {}).role || "",
          amount(offer.resources, "cpus"), amount(offer.resources, "gpus"),
          amount(offer.resources, "mem"), amount(offer.resources, "disk"),
        ]);
      }
    }
    return [el("h1", {}, `Outstanding offers (${rows.length})`),
      rows.length ? table(["ID", "Framework", "Agent", "Role", "CPUs", "GPUs", "Mem (MB)", "Disk (MB)"], rows)
        : el("p", { class: "muted" }, "No outstanding offers.")];
  }

  function rolesView() {
    if (roles === null) {
      loadRoles();
      return [el("h1", {}, "Roles"), el("p", { class: "muted" }, "Reading /roles…")];
    }
    const rows = roles.map((role) => [
      role.name, String(role.weight), (role.frameworks || []).length,
      amount(role.allocated, "cpus"), amount(role.allocated, "gpus"),
      amount(role.allocated, "mem"), amount(role.allocated, "disk"),
      amount(role.offered, "cpus"), amount(role.offered, "mem"), quotaText(role.quota),
    ]);
    return [el("h1", {}, `Roles (${rows.length})`),
      rows.length ? table(["Role", "Weight", "Frameworks", "CPUs", "GPUs", "Mem (MB)", "Disk (MB)", "Offered CPUs", "Offered mem (MB)", "Quota"], rows)
        : el("p", { class: "muted" }, "No roles have frameworks or reservations.")];
  }

  // "guarantee cpus 1; limit cpus 2, mem 1024", or "none".
  function quotaText(quota) {
    const parts = [];
    for (const [label, amounts] of [["guarantee", quota && quota.guarantee], ["limit", quota && quota.limit]]) {
      const items = Object.entries(amounts || {}).map(([name, value]) => `${name} ${value}`);
      if (items.length) parts.push(`${label} ${items.join(", ")}`);
    }
    return parts.length ? parts.join("; ") : "none";
  }

  async function loadRoles() {
    try {
      const response = await fetch("/roles");
      if (!response.ok) throw new Error(`/roles answered ${response.status}`);
      roles = (await response.json()).roles || [];
    } catch (error) {
      roles = [];
      status.textContent = `cannot read /roles (${error.message || error})`;
      status.classList.add("error");
    }
    if (parseRoute(location.hash).view === "roles") render();
  }

  // -- the sandbox, from the agent ---------------------------------------------------------

  function jsonp(url) {
    return new Promise((resolve, reject) => {
      const name = `mesetaJsonp${++jsonpCount}`;
      const script = document.createElement("script");
      // An error page (a 503 while the agent recovers, say) never calls back: give up.
      const timer = setTimeout(() => { done(); reject(new Error(`no answer from ${url}`)); }, JSONP_TIMEOUT_MS);
      const done = () => { clearTimeout(timer); window[name] = () => {}; script.remove(); };
      window[name] = (data) => { done(); resolve(data); };
      script.onerror = () => { done(); reject(new Error(`cannot reach ${url}`)); };
      script.src = `${url}${url.includes("?") ? "&" : "?"}jsonp=${name}`;
      document.body.append(script);
    });
  }

  async function showSandbox(container, agentInfo, frameworkId, taskId) {
    const base = agentUrl(agentInfo);
    try {
      const executor = findExecutor(await jsonp(`${base}/state`), frameworkId, taskId);
      if (!executor) {
        container.replaceChildren(el("p", { class: "muted" }, "The agent no longer knows this task."));
        return;
      }
      await browse(container, base, executor.directory, executor.directory);
    } catch (error) {
      container.replaceChildren(el("p", { class: "muted" }, String(error.message || error)));
    }
  }

  async function browse(container, base, directory, root) {
    const listing = await jsonp(`${base}/files/browse?path=${encodeURIComponent(directory)}`);
    const viewer = el("div", {});
    // A failed click says why where the file would show, instead of the last file.
    const opener = (action) => () => action().catch((error) =>
      viewer.replaceChildren(el("p", { class: "muted error" }, String(error.message || error))));
    const rows = listing.map((file) => {
      const name = file.path.split("/").pop();
      const isDirectory = file.mode.startsWith("d");
      const open = el("a", { href: "javascript:void(0)" }, name + (isDirectory ? "/" : ""));
      open.onclick = opener(() => isDirectory ? browse(container, base, file.path, root) : tail(viewer, base, file.path));
      const download = isDirectory ? "" : el("a", { href: `${base}/files/download?path=${encodeURIComponent(file.path)}` }, "download");
      return [open, sizeText(file.size), file.mode, when(file.mtime), download];
    });
    if (directory !== root) {
      const up = el("a", { href: "javascript:void(0)" }, "../");
      up.onclick = opener(() => browse(container, base, directory.slice(0, directory.lastIndexOf("/")), root));
      rows.unshift([up, "", "", "", ""]);
    }
    container.replaceChildren(el("p", { class: "muted" }, directory), table(["Name", "Size", "Mode", "Modified", ""], rows), viewer);
  }

  async function tail(viewer, base, path) {
    const name = path.split("/").pop();
    viewer.replaceChildren(el("p", { class: "muted" }, `Reading ${name}…`));
    const query = `path=${encodeURIComponent(path)}`;
    const size = (await jsonp(`${base}/files/read?${query}&offset=-1`)).offset;
    const offset = Math.max(0, size - TAIL_BYTES);
    const chunk = await jsonp(`${base}/files/read?${query}&offset=${offset}&length=${size - offset}`);
    const heading = el("h2", {}, name);
    const pre = el("pre", { class: "file" }, chunk.data);
    const following = el("input", { type: "checkbox", checked: "" });
    const note = el("span", { class: "muted" });
    viewer.replaceChildren(heading, el("label", {}, following, " follow "), note, pre);
    pre.scrollTop = pre.scrollHeight;
    follow({ base, query, pre, following, note, shownFrom: offset, end: size });
  }

  // Follows a file as Mesos's pailer does: every FOLLOW_MS, what was appended since the last
  // read, up to the size the agent reports (byte offsets, not characters, so multi-byte text
  // cannot skew them). Stops once another file or page replaces the view.
  function follow(view) {
    const { base, query, pre, following, note } = view;
    const describe = () => {
      const shown = view.end - view.shownFrom;
      note.textContent = view.shownFrom ? `last ${sizeText(shown)} of ${sizeText(view.end)}` : sizeText(view.end);
    };
    describe();
    const poll = async () => {
      if (!pre.isConnected) return;
      if (following.checked && !document.hidden) {
        try {
          const size = (await jsonp(`${base}/files/read?${query}&offset=-1`)).offset;
          const next = nextRead(view.end, size, TAIL_BYTES);
          if (next) {
            const chunk = await jsonp(`${base}/files/read?${query}&offset=${next.from}&length=${next.length}`);
            const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
            if (next.restart) { pre.textContent = ""; view.shownFrom = next.from; }
            pre.append(chunk.data);
            if (pre.textContent.length > FOLLOW_KEPT_CHARS) { // keep the page light
              pre.textContent = pre.textContent.slice(-TAIL_BYTES);
              view.shownFrom = size - TAIL_BYTES; // in bytes: exact for ASCII, close otherwise
            }
            view.end = size;
            if (atBottom) pre.scrollTop = pre.scrollHeight;
          }
          describe();
          note.classList.remove("error");
        } catch (error) {
          note.textContent = `cannot follow: ${error.message || error}`;
          note.classList.add("error");
        }
      }
      setTimeout(poll, FOLLOW_MS);
    };
    setTimeout(poll, FOLLOW_MS);
  }

  // -- daemon logs (`/master/log`, `/slave/log`), as Mesos's LOG links show them -------------

  // Whether a daemon's /state says it logs to a file that its /files serves.
  function logsToFile(daemonState) {
    return Boolean(daemonState && (daemonState.log_dir || daemonState.external_log_file));
  }

  function masterLog() {
    const viewer = el("div", {});
    const heading = el("h1", {}, "Master log");
    if (!logsToFile(state)) {
      viewer.append(el("p", { class: "muted" }, NO_LOG_FILE));
    } else {
      tail(viewer, "", "/master/log").catch((error) => showLogError(viewer, error));
    }
    return [heading, el("p", { class: "muted" }, `this master (${location.host})`), viewer];
  }

  function agentLog(id) {
    const found = agentsById()[id];
    if (!found) return [el("h1", {}, "Agent not found"), el("p", {}, id)];
    const viewer = el("div", {}, el("p", { class: "muted" }, "Asking the agent…"));
    const base = agentUrl(found);
    jsonp(`${base}/state`)
      .then((agentState) => {
        if (!logsToFile(agentState)) viewer.replaceChildren(el("p", { class: "muted" }, NO_LOG_FILE));
        else return tail(viewer, base, "/slave/log");
      })
      .catch((error) => showLogError(viewer, error));
    return [
      el("h1", {}, `Agent log: ${found.hostname}`),
      el("p", {}, link(`#/agents/${encodeURIComponent(id)}`, "back to the agent")),
      viewer,
    ];
  }

  function showLogError(viewer, error) {
    viewer.replaceChildren(el("p", { class: "muted error" }, String(error.message || error)));
  }

  function isLogRoute({ view, args }) {
    return view === "log" || (view === "agents" && args[1] === "log");
  }

  // -- routing and refresh -----------------------------------------------------------------

  function render() {
    if (!state) return;
    const { view, args } = parseRoute(location.hash);
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === view);
    const views = {
      overview: () => overview(),
      frameworks: () => (args[0] ? framework(args[0]) : frameworks()),
      agents: () => (args[1] === "log" ? agentLog(args[0]) : args[0] ? agent(args[0]) : agents()),
      log: () => masterLog(),
      offers: () => offers(),
      roles: () => rolesView(),
      tasks: () => (args.length === 2 ? task(args[0], args[1]) : tasks()),
    };
    const typing = document.activeElement && document.activeElement.classList.contains("filter");
    main.replaceChildren(...(views[view] || views.overview)());
    if (typing) {
      const input = document.querySelector("input.filter");
      input.focus();
      input.setSelectionRange(input.value.length, input.value.length);
    }
  }

  async function refresh() {
    try {
      const response = await fetch("/state");
      if (!response.ok) throw new Error(`/state answered ${response.status}`);
      state = await response.json();
      updatedAt = new Date().toLocaleTimeString();
      status.textContent = `updated ${updatedAt}`;
      status.classList.remove("error");
      const route = parseRoute(location.hash);
      logLink.hidden = !logsToFile(state);
      if (route.view === "roles") loadRoles(); // redraws the view when /roles answers
      // A log view reads the daemon, not /state: redrawing it would restart the file.
      if (isLogRoute(route) && main.childElementCount) return;
      const details = document.getElementById("task-details");
      const entry = route.view === "tasks" && route.args.length === 2 && details && findTask(...route.args);
      if (entry) details.replaceChildren(...taskDetails(entry)); // keeps the sandbox view
      else render();
    } catch (error) {
      const since = updatedAt ? `; what is shown is from ${updatedAt}` : "";
      status.textContent = `cannot reach this master (${error.message || error})${since}`;
      status.classList.add("error");
    }
  }

  window.addEventListener("hashchange", render);
  refresh();
  setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
}
