// The livecore reference page: connect with a token, subscribe with SQL, watch rows enter,
// change and leave, write rows. Every value is rendered with textContent, never as HTML.
'use strict';

const $ = (selector) => document.querySelector(selector);

const state = {
  ws: null,
  tables: [],
  liveQuery: null,
  columns: [],
  rows: new Map(), // key -> <tr>
  lastSeq: null,
  requests: 0,
};

function setPhase(phase, text) {
  document.body.dataset.phase = phase;
  const status = $('#status');
  status.textContent = text;
  status.className = 'pill ' + phase;
  const connected = phase !== 'disconnected' && phase !== 'connecting';
  $('#subscribe').disabled = !connected;
  $('#unsubscribe').disabled = !connected || !state.liveQuery;
  $('#write').disabled = !connected || state.tables.every((t) => !t.writable);
}

function log(kind, text) {
  const item = document.createElement('li');
  const badge = document.createElement('span');
  badge.className = 'log-kind kind-' + kind.replace(/[^a-z_]/g, '');
  badge.textContent = kind;
  const body = document.createElement('span');
  body.className = 'log-text';
  body.textContent = text;
  item.append(badge, body);
  const list = $('#log');
  list.prepend(item);
  while (list.children.length > 60) list.lastChild.remove();
}

function send(message) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify(message));
  }
}

function connect() {
  if (state.ws) state.ws.close(1000, 'reconnecting');
  const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
  const ws = new WebSocket(scheme + location.host + '/ws');
  state.ws = ws;
  setPhase('connecting', 'connecting…');
  ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token: $('#token').value }));
  ws.onmessage = (event) => {
    if (state.ws === ws) handle(JSON.parse(event.data));
  };
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    state.ws = null;
    state.liveQuery = null;
    setPhase('disconnected', 'closed ' + event.code + (event.reason ? ' · ' + event.reason : ''));
    log('closed', event.code + ' ' + event.reason);
  };
}

function subscribe() {
  if (state.liveQuery) send({ type: 'unsubscribe', live_query_id: state.liveQuery });
  state.liveQuery = null;
  send({
    type: 'subscribe',
    id: 'q' + ++state.requests,
    sql: $('#sql').value,
    initial_load: $('#initial-load').checked,
  });
}

function keyOf(row) {
  return state.columns.includes('id') ? String(row.id) : JSON.stringify(row);
}

function display(value) {
  if (value === null || value === undefined) return '∅';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function flash(tr, name) {
  tr.classList.remove('enter', 'change');
  void tr.offsetWidth; // restart the animation
  tr.classList.add(name);
}

function fillRow(tr, row) {
  tr.replaceChildren();
  for (const column of state.columns) {
    const td = document.createElement('td');
    const value = row[column];
    td.textContent = display(value);
    if (value === null) td.className = 'null';
    else if (typeof value === 'number') td.className = 'num';
    tr.append(td);
  }
  tr.dataset.row = JSON.stringify(row);
}

function upsert(row, how) {
  const key = keyOf(row);
  let tr = state.rows.get(key);
  if (!tr) {
    tr = document.createElement('tr');
    tr.dataset.key = key;
    const body = $('#rows tbody');
    const numeric = Number(key);
    let before = null;
    if (state.columns.includes('id') && !Number.isNaN(numeric)) {
      before = [...body.children].find((other) => Number(other.dataset.key) > numeric) || null;
    }
    body.insertBefore(tr, before);
    state.rows.set(key, tr);
  }
  fillRow(tr, row);
  if (how) flash(tr, how);
}

function remove(row) {
  const key = keyOf(row);
  const tr = state.rows.get(key);
  if (!tr) return;
  state.rows.delete(key);
  tr.dataset.leaving = 'true';
  tr.classList.add('leave');
  setTimeout(() => tr.remove(), 700);
}

function renderSummary() {
  const count = state.rows.size;
  const seq = state.lastSeq === null ? '' : ' · last commit ' + state.lastSeq;
  $('#summary').textContent = state.liveQuery
    ? count + (count === 1 ? ' row' : ' rows') + seq
    : 'no live query';
  $('#empty').hidden = count > 0;
}

function startResult(message) {
  state.liveQuery = message.live_query_id;
  state.columns = message.columns;
  state.rows.clear();
  state.lastSeq = null;
  const head = $('#rows thead tr');
  head.replaceChildren();
  for (const column of state.columns) {
    const th = document.createElement('th');
    th.textContent = column;
    head.append(th);
  }
  $('#rows tbody').replaceChildren();
}

function handle(message) {
  const mine = message.live_query_id === state.liveQuery;
  switch (message.type) {
    case 'authenticated':
      state.tables = message.tables;
      setPhase('connected', 'signed in as ' + message.user);
      log('authenticated', message.user + ' · ' + message.connection_id);
      buildWriteForm();
      break;
    case 'subscribed':
      startResult(message);
      setPhase($('#initial-load').checked ? 'loading' : 'live',
        $('#initial-load').checked ? 'loading…' : 'live');
      log('subscribed', message.live_query_id + ' · ' + message.columns.join(', '));
      break;
    case 'snapshot':
      if (!mine) return;
      for (const row of message.rows) upsert(row, null);
      break;
    case 'load_complete':
      if (!mine) return;
      if (message.boundary !== null) state.lastSeq = message.boundary;
      setPhase('live', 'live');
      log('load_complete', message.rows + ' rows at commit ' + message.boundary);
      break;
    case 'changes':
      if (!mine) return;
      state.lastSeq = message.seq;
      for (const change of message.changes) {
        if (change.op === 'insert') upsert(change.row, 'enter');
        else if (change.op === 'delete') remove(change.row);
        else {
          if (change.old && keyOf(change.old) !== keyOf(change.row)) remove(change.old);
          upsert(change.row, 'change');
        }
      }
      log('changes', 'commit ' + message.seq + ': ' +
        message.changes.map((change) => change.op).join(', '));
      break;
    case 'gap':
      log('gap', 'missed ' + message.missed + ' after commit ' + display(message.last_seq) +
        ': subscribe again to catch up');
      break;
    case 'resync_required':
    case 'resume_unavailable':
    case 'closed':
      if (mine) {
        state.liveQuery = null;
        setPhase('connected', 'live query ended');
      }
      log(message.type, message.detail || 'subscribe again');
      break;
    case 'unsubscribed':
      log('unsubscribed', message.live_query_id);
      break;
    case 'written':
      $('#write-result').textContent = 'committed as ' + message.seq;
      log('written', 'commit ' + message.seq + ' · ids ' + message.ids.join(', '));
      break;
    case 'error':
      if (typeof message.id === 'string' && message.id.startsWith('w')) {
        $('#write-result').textContent = message.message;
      }
      log('error', message.code + ': ' + message.message);
      break;
    case 'event':
      log('event', message.event);
      break;
    default:
      log(message.type, JSON.stringify(message));
  }
  renderSummary();
}

function selectedTable() {
  return state.tables.find((table) => table.name === $('#write-table').value);
}

function buildWriteForm() {
  const select = $('#write-table');
  const previous = select.value;
  select.replaceChildren();
  for (const table of state.tables.filter((t) => t.writable)) {
    const option = document.createElement('option');
    option.value = table.name;
    option.textContent = table.name;
    select.append(option);
  }
  if (previous) select.value = previous;
  select.disabled = select.options.length === 0;
  buildFields();
}

function buildFields() {
  const table = selectedTable();
  const fields = $('#write-fields');
  fields.replaceChildren();
  if (!table) return;
  for (const column of table.columns) {
    if (column.name === 'id' || column.name === table.owner_column) continue;
    const label = document.createElement('label');
    label.htmlFor = 'field-' + column.name;
    label.textContent = column.name;
    const input = document.createElement('input');
    input.id = 'field-' + column.name;
    input.dataset.column = column.name;
    input.dataset.type = column.type;
    input.placeholder = column.type.toLowerCase();
    fields.append(label, input);
  }
  updateOp();
}

function updateOp() {
  const op = $('#write-op').value;
  $('#write-id').placeholder = op === 'insert' ? 'new row: leave empty' : 'required';
  for (const input of document.querySelectorAll('#write-fields input')) {
    input.disabled = op === 'delete';
  }
}

function parseValue(input) {
  const text = input.value.trim();
  if (text === '') return undefined;
  if (text.toLowerCase() === 'null') return null;
  if (input.dataset.type === 'INTEGER') {
    if (!/^-?\d+$/.test(text)) throw new Error(input.dataset.column + ' takes a whole number');
    return Number(text);
  }
  if (input.dataset.type === 'REAL') {
    const number = Number(text);
    if (Number.isNaN(number)) throw new Error(input.dataset.column + ' takes a number');
    return number;
  }
  return input.value;
}

function write() {
  const table = selectedTable();
  if (!table) return;
  const op = $('#write-op').value;
  const idText = $('#write-id').value.trim();
  const operation = { op, table: table.name };
  try {
    if (idText !== '') {
      if (!/^-?\d+$/.test(idText)) throw new Error('id takes a whole number');
      operation.id = Number(idText);
    } else if (op !== 'insert') {
      throw new Error(op + ' needs an id');
    }
    if (op !== 'delete') {
      operation.values = {};
      for (const input of document.querySelectorAll('#write-fields input')) {
        const value = parseValue(input);
        if (value !== undefined) operation.values[input.dataset.column] = value;
      }
      if (op === 'insert' && operation.id !== undefined) {
        operation.values.id = operation.id;
        delete operation.id;
      }
    }
  } catch (error) {
    $('#write-result').textContent = error.message;
    return;
  }
  $('#write-result').textContent = 'writing…';
  send({ type: 'write', id: 'w' + ++state.requests, ops: [operation] });
}

function editRow(tr) {
  const row = JSON.parse(tr.dataset.row || '{}');
  const table = state.tables.find((t) => $('#sql').value.toLowerCase().includes(t.name));
  if (table && table.writable) {
    $('#write-table').value = table.name;
    buildFields();
  }
  $('#write-op').value = 'update';
  updateOp();
  $('#write-id').value = row.id === undefined ? '' : String(row.id);
  for (const input of document.querySelectorAll('#write-fields input')) {
    const value = row[input.dataset.column];
    input.value = value === undefined || value === null ? '' : String(value);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('#connect-form').addEventListener('submit', (event) => {
    event.preventDefault();
    connect();
  });
  $('#query-form').addEventListener('submit', (event) => {
    event.preventDefault();
    subscribe();
  });
  $('#unsubscribe').addEventListener('click', () => {
    if (state.liveQuery) send({ type: 'unsubscribe', live_query_id: state.liveQuery });
    state.liveQuery = null;
    setPhase('connected', 'no live query');
    renderSummary();
  });
  $('#write-form').addEventListener('submit', (event) => {
    event.preventDefault();
    write();
  });
  $('#write-table').addEventListener('change', buildFields);
  $('#write-op').addEventListener('change', updateOp);
  $('#rows tbody').addEventListener('click', (event) => {
    const tr = event.target.closest('tr');
    if (tr) editRow(tr);
  });
  // Nothing is read from the URL: a token in a link would leak (history, logs, Referer),
  // and a crafted link could sign a visitor in under someone else's token.
  renderSummary();
});
