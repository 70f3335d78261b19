// Runs the web UI (api/webui/app.js) in node against a real /state document, with a minimal
// DOM, and checks what every view shows. Usage: node webui_check.js APP_JS STATE_JSON
// Prints "ok" and exits 0, or prints what went wrong and exits 1.
"use strict";

const fs = require("fs");
const vm = require("vm");
const assert = require("assert");

const [appPath, statePath] = process.argv.slice(2);
const source = fs.readFileSync(appPath, "utf8");
const state = JSON.parse(fs.readFileSync(statePath, "utf8"));

// -- the pure helpers ----------------------------------------------------------------------
const lib = require(appPath); // without a document, app.js only exports its helpers

assert.strictEqual(lib.agentUrl({ pid: "slave(1)@10.1.2.3:5051" }), "http://10.1.2.3:5051");
assert.strictEqual(lib.agentUrl({ hostname: "n1", port: 5051 }), "http://n1:5051");
assert.deepStrictEqual(lib.parseRoute("#/tasks/fw%2F1/t1"), { view: "tasks", args: ["fw/1", "t1"] });
assert.deepStrictEqual(lib.parseRoute(""), { view: "overview", args: [] });
assert.strictEqual(lib.sizeText(2048), "2.0 KB");
assert.strictEqual(lib.health({ statuses: [{ healthy: false }] }), "unhealthy");
assert.strictEqual(lib.health({ statuses: [] }), "");
const agentState = {
  frameworks: [{ id: "F", executors: [{ directory: "/d1", tasks: [{ id: "a" }], queued_tasks: [{ task_id: { value: "q" } }] }] }],
  completed_frameworks: [{ id: "F", completed_executors: [{ directory: "/d2", completed_tasks: [{ id: "b" }] }] }],
};
assert.strictEqual(lib.findExecutor(agentState, "F", "a").directory, "/d1");
assert.strictEqual(lib.findExecutor(agentState, "F", "q").directory, "/d1");
assert.strictEqual(lib.findExecutor(agentState, "F", "b").directory, "/d2");
assert.strictEqual(lib.findExecutor(agentState, "G", "a"), null);
assert.strictEqual(lib.nextRead(10, 10, 4), null); // nothing new
assert.deepStrictEqual(lib.nextRead(10, 13, 4), { from: 10, length: 3, restart: false }); // grew
assert.deepStrictEqual(lib.nextRead(10, 30, 4), { from: 26, length: 4, restart: true }); // grew a lot
assert.deepStrictEqual(lib.nextRead(10, 6, 4), { from: 2, length: 4, restart: true }); // truncated
assert.deepStrictEqual(lib.nextRead(10, 0, 4), { from: 0, length: 0, restart: true }); // emptied

// -- a minimal DOM -------------------------------------------------------------------------
class Node {}
class Text extends Node {
  constructor(text) { super(); this.text = text; }
  get textContent() { return this.text; }
}
class Element extends Node {
  constructor(tag) {
    super();
    this.tagName = tag.toUpperCase();
    this.children = [];
    this.attributes = {};
    this.dataset = {};
    this.value = "";
    const classes = new Set();
    this.classList = {
      add: (c) => classes.add(c), remove: (c) => classes.delete(c),
      contains: (c) => classes.has(c) || (this.attributes.class || "").split(" ").includes(c),
      toggle: (c, on) => (on ? classes.add(c) : classes.delete(c)),
    };
  }
  setAttribute(name, value) {
    this.attributes[name] = String(value);
    if (name === "value") this.value = String(value);
  }
  append(...nodes) { this.children.push(...nodes); }
  replaceChildren(...nodes) { this.children = nodes; }
  remove() {}
  focus() {}
  setSelectionRange() {}
  get childElementCount() { return this.children.length; }
  get textContent() { return this.children.map((c) => c.textContent).join(""); }
  set textContent(text) { this.children = [new Text(text)]; }
  all() { return [this, ...this.children.flatMap((c) => (c instanceof Element ? c.all() : []))]; }
}

const main = new Element("main");
const status = new Element("span");
const logLink = new Element("a");
logLink.hidden = true;
const intervals = [];
const navLinks = ["frameworks", "agents", "tasks"].map((view) => {
  const a = new Element("a");
  a.dataset.view = view;
  return a;
});
const listeners = {};
const document = {
  hidden: false,
  activeElement: null,
  body: new Element("body"),
  getElementById: (id) => ({ main, status, "log-link": logLink }[id]),
  createElement: (tag) => new Element(tag),
  createTextNode: (text) => new Text(text),
  querySelectorAll: (selector) => (selector === "nav a" ? navLinks : []),
  querySelector: (selector) => main.all().find((e) => e.tagName === "INPUT") || null,
};
const location = { hash: "" };
const rolesDoc = {
  roles: [{ name: "analytics", weight: 2.5, frameworks: ["F1", "F2"], allocated: { cpus: 1.5, mem: 64 }, offered: {} }],
};
const context = {
  document, location, Node, console, Date, Math, Number, String, Object, Promise, Error,
  encodeURIComponent, decodeURIComponent,
  window: { addEventListener: (name, fn) => { listeners[name] = fn; } },
  fetch: async (url) => ({ ok: true, status: 200, json: async () => (url === "/roles" ? rolesDoc : state) }),
  setInterval: (fn) => { intervals.push(fn); return 0; },
  // Timers as a browser has them, but never keeping node alive after the checks.
  setTimeout: (fn, ms) => { const timer = setTimeout(fn, ms); timer.unref(); return timer; },
  clearTimeout,
};
context.window.document = document;

function show(hash) {
  location.hash = hash;
  listeners.hashchange();
  return main.textContent;
}

(async () => {
  vm.runInNewContext(source, context);
  await new Promise((resolve) => setTimeout(resolve, 50)); // the first refresh
  assert.match(status.textContent, /^updated /);

  const tasks = lib.allTasks(state);
  assert.ok(tasks.length > 0, "the state holds tasks");
  const agents = state.slaves || [];
  const frameworks = [...(state.frameworks || []), ...(state.completed_frameworks || [])];

  const overview = show("#/");
  assert.match(overview, /agents active/);
  assert.match(overview, /tasks running/);
  assert.match(overview, /disk used/);

  const taskList = show("#/tasks");
  for (const { task } of tasks) assert.ok(taskList.includes(task.id), `tasks list shows ${task.id}`);

  const agentList = show("#/agents");
  for (const agent of agents) assert.ok(agentList.includes(agent.hostname));
  if (agents.length) {
    const page = show(`#/agents/${encodeURIComponent(agents[0].id)}`);
    assert.match(page, /Attributes/);
    assert.match(page, /Reservations/);
  }

  const frameworkList = show("#/frameworks");
  for (const framework of frameworks) assert.ok(frameworkList.includes(framework.id));
  assert.ok(frameworkList.includes(`Frameworks (${(state.frameworks || []).length})`));
  assert.ok(frameworkList.includes(`Completed frameworks (${(state.completed_frameworks || []).length})`));
  const first = frameworks[0];
  assert.ok(show(`#/frameworks/${encodeURIComponent(first.id)}`).includes(first.name || first.id));

  const { task } = tasks[0];
  const detail = show(`#/tasks/${encodeURIComponent(task.framework_id)}/${encodeURIComponent(task.id)}`);
  assert.ok(detail.includes(task.id) && detail.includes("Statuses") && detail.includes("Sandbox"));
  assert.match(show("#/tasks/nope/nope"), /Task not found/);
  assert.match(show("#/agents/nope"), /Agent not found/);

  // Offers: every framework's outstanding offers, with their agents.
  const offered = (state.frameworks || []).flatMap((f) => f.offers || []);
  const offerView = show("#/offers");
  assert.ok(offerView.includes(`Outstanding offers (${offered.length})`), offerView);
  assert.ok(offered.length > 0, "the state holds an outstanding offer");
  for (const offer of offered) assert.ok(offerView.includes(offer.id));

  // Roles: read from /roles when the view opens, drawn once it answers.
  assert.match(show("#/roles"), /Reading \/roles/);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const roleView = main.textContent;
  assert.ok(roleView.includes("Roles (1)") && roleView.includes("analytics") && roleView.includes("2.5"), roleView);

  // The Log link shows once this master's /state says it logs to a file /files serves.
  assert.ok(!state.log_dir && !state.external_log_file, "the test master logs to stderr only");
  assert.strictEqual(logLink.hidden, true);
  assert.match(show("#/log"), /Not logging to a file/);
  state.external_log_file = "/var/log/meseta/master.log";
  intervals.forEach((fn) => fn());
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.strictEqual(logLink.hidden, false);
  const masterLog = show("#/log");
  assert.ok(masterLog.includes("Master log") && masterLog.includes("Reading log"), masterLog);
  if (agents.length) {
    const agentLog = show(`#/agents/${encodeURIComponent(agents[0].id)}/log`);
    assert.ok(agentLog.includes(`Agent log: ${agents[0].hostname}`), agentLog);
    assert.ok(agentLog.includes("Asking the agent"), agentLog);
  }

  console.log("ok");
})().catch((error) => {
  console.log(error.stack || String(error));
  process.exit(1);
});
