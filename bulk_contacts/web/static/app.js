// bulk-contacts serve: the little the pages do in the browser. Every value from a spreadsheet is
// put in the page as text (textContent, attributes), never as HTML.
"use strict";

const csrf = () => document.body.dataset.csrf;

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "X-CSRF-Token": csrf(),
      "X-Roster": document.body.dataset.roster, // the roster this page shows (not another tab's)
      "Content-Type": "application/json",
    },
    body: JSON.stringify(body),
  });
  return response.json();
}

function text(tag, value, className) {
  const element = document.createElement(tag);
  element.textContent = value == null ? "" : String(value);
  if (className) element.className = className;
  return element;
}

// 2. upload: the file as the request body, streamed to the server's private folder

function setUpUpload() {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = document.getElementById("roster-file");
  const status = document.getElementById("upload-status");
  async function send(file) {
    status.textContent = `Reading ${file.name}…`;
    const response = await fetch("/upload", {
      method: "POST",
      headers: {
        "X-CSRF-Token": csrf(),
        "X-File-Name": encodeURIComponent(file.name),
        "Content-Type": "application/octet-stream",
      },
      body: file,
    });
    const answer = await response.json();
    if (answer.redirect) window.location.assign(answer.redirect);
    else status.textContent = answer.error || "the upload failed";
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.files.length) send(input.files[0]);
    else status.textContent = "Choose a file first.";
  });
  form.addEventListener("dragover", (event) => {
    event.preventDefault();
    form.classList.add("over");
  });
  form.addEventListener("dragleave", () => form.classList.remove("over"));
  form.addEventListener("drop", (event) => {
    event.preventDefault();
    form.classList.remove("over");
    if (event.dataTransfer.files.length) send(event.dataTransfer.files[0]);
  });
}

// 4. fix: the grid (Tabulator, virtual rendering), checked as you type, saved on leaving a cell

const MARKS = { error: "✖", warning: "⚠" };

function worstOf(issues) {
  if (!issues.length) return "";
  return issues.some((issue) => issue[0] === "error") ? "error" : "warning";
}

function formatCell(cell) {
  const element = cell.getElement();
  const issues = (cell.getRow().getData()._issues || {})[cell.getField()] || [];
  const worst = worstOf(issues);
  element.classList.remove("cell-error", "cell-warning");
  const content = document.createElement("span");
  if (worst) {
    element.classList.add(`cell-${worst}`);
    element.title = issues.map((issue) => issue[1]).join("\n");
    const mark = text("span", MARKS[worst], "cell-mark");
    mark.setAttribute("aria-hidden", "true");
    content.append(mark, text("span", `${worst}: `, "sr-only"));
  } else {
    element.removeAttribute("title");
  }
  content.append(text("span", cell.getValue()));
  return content;
}

function formatProblems(cell) {
  const issues = cell.getValue() || {};
  const list = document.createElement("span");
  list.className = "problems";
  for (const [field, found] of Object.entries(issues)) {
    for (const [severity, message] of found) {
      const line = text("span", `${MARKS[severity]} ${field === "_row" ? "" : field + ": "}${message}`);
      line.dataset.severity = severity;
      list.append(line, document.createElement("br"));
    }
  }
  return list;
}

function headerTitle(cell, params) {
  return text("span", params.label);
}

function typingEditor(cell, onRendered, success, cancel) {
  const input = document.createElement("input");
  const row = cell.getRow().getData()._row;
  const field = cell.getField();
  input.type = "text";
  input.value = cell.getValue() == null ? "" : cell.getValue();
  input.style.width = "100%";
  input.setAttribute("aria-label", `row ${row}, ${field}`);
  onRendered(() => {
    input.focus();
    input.select();
  });
  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => checkTyping(row, field, input), 250);
  });
  let done = false;
  const commit = () => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    success(input.value);
  };
  input.addEventListener("blur", commit);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") commit();
    if (event.key === "Escape") {
      done = true;
      clearTimeout(timer);
      cancel();
    }
  });
  return input;
}

async function checkTyping(row, field, input) {
  const answer = await post("/fix/check", { row, field, value: input.value });
  const status = document.getElementById("typing-check");
  if (!status || answer.error) return;
  const worst = worstOf(answer.issues);
  input.setAttribute("aria-invalid", worst === "error" ? "true" : "false");
  status.textContent = worst
    ? `Row ${row}, ${field}: ${answer.issues.map((i) => `${MARKS[i[0]]} ${i[1]}`).join(" ")}`
    : `Row ${row}, ${field}: ✔ no problem in this cell`;
}

function showCounts(counts) {
  const element = document.getElementById("counts");
  if (!element) return;
  element.textContent =
    `${counts.rows} rows: ${counts.errors} errors in ${counts.invalid_rows} rows, ` +
    `${counts.warnings} warnings.`;
  element.dataset.errors = counts.errors;
}

const WIDTHS = { email: 230, external_contact_id: 150, first_name: 130, last_name: 130 };

const FILTERS = {
  errors: (data) => data._worst === "error",
  warnings: (data) =>
    Object.values(data._issues || {}).some((found) => found.some((i) => i[0] === "warning")),
};

async function setUpGrid() {
  const element = document.getElementById("grid");
  if (!element || typeof Tabulator === "undefined") return;
  const data = await (await fetch("/fix/rows")).json();
  const columns = [
    { title: "row", field: "_row", sorter: "number", frozen: true, width: 76 },
    {
      title: "problems",
      field: "_issues",
      formatter: formatProblems,
      headerSort: false,
      width: 330,
    },
    ...data.columns.map((column) => ({
      title: column.field,
      field: column.field,
      editor: typingEditor,
      formatter: formatCell,
      titleFormatter: headerTitle,
      titleFormatterParams: { label: `${column.letter} · ${column.header} → ${column.field}` },
      headerWordWrap: true,
      width: WIDTHS[column.field] || 140,
    })),
  ];
  const table = new Tabulator(element, {
    data: data.rows,
    index: "_row",
    columns,
    height: `${element.clientHeight}px`,
    layout: "fitData",
    placeholder: "No rows",
  });
  window.rosterGrid = table;
  table.on("cellEdited", async (cell) => {
    const row = cell.getRow().getData()._row;
    const answer = await post("/fix/cell", { row, field: cell.getField(), value: cell.getValue() });
    if (answer.error) {
      document.getElementById("typing-check").textContent = answer.error;
      return;
    }
    for (const changed of answer.rows) {
      const target = table.getRow(changed._row);
      if (target) await target.update(changed).then(() => target.reformat());
    }
    showCounts(answer.counts);
    element.dataset.saved = String(Number(element.dataset.saved || 0) + 1);
  });
  table.on("tableBuilt", () => {
    element.dataset.ready = "yes";
  });
  for (const radio of document.querySelectorAll("input[name=grid-filter]")) {
    radio.addEventListener("change", () => {
      const filter = FILTERS[radio.value];
      if (filter) table.setFilter(filter);
      else table.clearFilter();
    });
  }
  document.getElementById("next-problem").addEventListener("click", () => nextError(table));
}

function nextError(table) {
  const rows = table.getRows("active").filter((row) => row.getData()._worst === "error");
  if (!rows.length) {
    document.getElementById("typing-check").textContent = "✔ No errors left.";
    return;
  }
  const row = rows[0];
  const issues = row.getData()._issues;
  const field = Object.keys(issues).find(
    (name) => name !== "_row" && table.getColumn(name) && worstOf(issues[name]) === "error",
  );
  table.scrollToRow(row, "center", false).then(() => {
    if (field) row.getCell(field).edit();
  });
}

// 6. apply: live progress by server-sent events

function describeProgress(s) {
  const stopping = s.stopping ? " Stopping: the changes in flight finish first." : "";
  return (
    `${s.done} of ${s.total} changes: ${s.ok} done, ${s.failed} failed, ${s.skipped} skipped, ` +
    `${s.retried} retried, ${s.rate_limited} rate-limited (429), ${s.held_back} held back by ` +
    `the rate limit; ${s.seconds} s.${stopping}`
  );
}

function setUpProgress() {
  const run = document.getElementById("run");
  if (!run || run.dataset.running !== "yes") return;
  const bar = document.getElementById("run-progress");
  const status = document.getElementById("run-status");
  const events = new EventSource("/run/events");
  events.onmessage = (event) => {
    const snapshot = JSON.parse(event.data);
    bar.max = snapshot.total || 1;
    bar.value = snapshot.done;
    status.textContent = describeProgress(snapshot);
  };
  events.addEventListener("finished", () => {
    events.close();
    window.location.reload();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setUpUpload();
  setUpGrid();
  setUpProgress();
});
