/*
 * Keel's dashboard, in the browser: plain JavaScript, no build step, no framework.
 *
 * Once a second it reads, from the admin listener that served it:
 *   /readyz                   the status pill (ready, recovering, halted...);
 *   /api/v1/series?after=T    the new one-second samples for the charts (the first request gets
 *                             the last ten minutes, so the charts open with their history);
 *   /api/v1/clients           the clients table (first 1,000 by client id, searched here);
 *   /api/v1/retained?filter=F the retained-message browser (first 200 matching topics).
 * Changes (disconnect a client, delete a retained message) are DELETE requests; the broker
 * answers once the change is durable, and the next refresh shows it.
 *
 * When the broker asks for a token (401), a field appears; the token is kept in a variable of this
 * page only (never in storage), sent as `Authorization: Bearer`, and forgotten on reload.
 */
(() => {
  const refreshMs = 1000;
  const pointsMax = 600;
  const clientsLimit = 1000;
  const retainedLimit = 200;

  const state = {
    token: null,
    lastSampleMs: null,
    columns: { time: [], received: [], sent: [], clients: [], drops: [], sync: [], rss: [], heap: [] },
    charts: {},
    clients: [],
    clientsRendered: '',
    retainedRendered: '',
  };

  const element = (id) => document.getElementById(id);

  /** A JSON request to the admin listener; a 401 reveals the token field and throws. */
  async function api(path, method = 'GET') {
    const headers = state.token === null ? {} : { Authorization: `Bearer ${state.token}` };
    const response = await fetch(path, { method, headers, cache: 'no-store' });
    const body = await response.json().catch(() => ({}));
    if (response.status === 401) {
      element('token-form').hidden = false;
      element('token-hint').textContent = state.token === null ? 'this broker asks for its admin token' : 'that token was refused';
      throw new Error(body.error?.message ?? 'unauthorized');
    }
    if (!response.ok) throw new Error(body.error?.message ?? `${response.status} ${response.statusText}`);
    return body;
  }

  function showError(error) {
    const box = element('error');
    box.hidden = error === null;
    box.textContent = error === null ? '' : String(error.message ?? error);
  }

  async function refreshStatus() {
    const pill = element('status');
    try {
      const response = await fetch('/readyz', { cache: 'no-store' });
      const body = await response.json();
      pill.textContent = body.reason === undefined ? body.status : `${body.status}: ${body.reason}`;
      pill.className = `status ${response.ok ? 'ready' : 'down'}`;
    } catch {
      pill.textContent = 'unreachable';
      pill.className = 'status down';
    }
  }

  // ---- charts --------------------------------------------------------------------------------

  const chartSpecs = [
    {
      id: 'rate',
      series: [
        ['in', 'received', '#2f6fd6'],
        ['out', 'sent', '#1e9e5a'],
      ],
      latest: (c) => `${rate(last(c.received))} in, ${rate(last(c.sent))} out`,
    },
    { id: 'clients', series: [['clients', 'clients', '#7a4fd1']], latest: (c) => `${last(c.clients) ?? '–'}` },
    { id: 'drops', series: [['drops/s', 'drops', '#d1493f']], latest: (c) => rate(last(c.drops)) },
    { id: 'sync', series: [['p99 ms', 'sync', '#c7831b']], latest: (c) => (last(c.sync) == null ? 'no syncs' : `${last(c.sync).toFixed(2)} ms`) },
    {
      id: 'memory',
      series: [
        ['RSS', 'rss', '#2f6fd6'],
        ['heap used', 'heap', '#9aa3b2'],
      ],
      latest: (c) => `${mib(last(c.rss))} RSS, ${mib(last(c.heap))} heap`,
    },
  ];

  const last = (values) => (values.length === 0 ? null : values[values.length - 1]);
  const rate = (value) => (value == null ? '–' : `${Math.round(value).toLocaleString()}/s`);
  const mib = (value) => (value == null ? '–' : `${value.toFixed(1)} MiB`);

  function appendSamples(samples) {
    const columns = state.columns;
    for (const sample of samples) {
      columns.time.push(sample.timeMs / 1000);
      columns.received.push(sample.receivedPerSecond);
      columns.sent.push(sample.sentPerSecond);
      columns.clients.push(sample.clientsConnected);
      columns.drops.push(sample.droppedPerSecond);
      columns.sync.push(sample.syncSecondsP99 === null ? null : sample.syncSecondsP99 * 1000);
      columns.rss.push(sample.rssBytes / 1048576);
      columns.heap.push(sample.heapUsedBytes / 1048576);
      state.lastSampleMs = sample.timeMs;
    }
    for (const values of Object.values(columns)) if (values.length > pointsMax) values.splice(0, values.length - pointsMax);
  }

  function drawCharts() {
    const columns = state.columns;
    for (const spec of chartSpecs) {
      const data = [columns.time, ...spec.series.map(([, key]) => columns[key])];
      const chart = state.charts[spec.id];
      if (chart === undefined) state.charts[spec.id] = createChart(spec, data);
      else chart.setData(data);
      element(`latest-${spec.id}`).textContent = spec.latest(columns);
    }
  }

  function createChart(spec, data) {
    const target = element(`chart-${spec.id}`);
    const options = {
      width: Math.max(300, target.clientWidth),
      height: 180,
      scales: { x: { time: true }, y: { range: (_chart, min, max) => [0, Math.max(1, max ?? 1, min ?? 0)] } },
      series: [{}, ...spec.series.map(([label, , stroke]) => ({ label, stroke, width: 2, spanGaps: false }))],
      axes: [{}, { size: 60 }],
      legend: { live: false },
    };
    // uPlot is the global the vendored iife script defines.
    return new window.uPlot(options, data, target);
  }

  async function refreshSeries() {
    const after = state.lastSampleMs === null ? '' : `?after=${state.lastSampleMs}`;
    const body = await api(`/api/v1/series${after}`);
    appendSamples(body.samples);
    drawCharts();
  }

  // ---- clients ---------------------------------------------------------------------------------

  async function refreshClients() {
    const body = await api(`/api/v1/clients?limit=${clientsLimit}`);
    state.clients = body.items;
    renderClients();
  }

  function renderClients() {
    const search = element('client-search').value.trim().toLowerCase();
    const matches = (client) => search === '' || [client.clientId, client.username ?? '', client.remoteAddress].some((text) => text.toLowerCase().includes(search));
    const shown = state.clients.filter(matches);
    element('clients-count').textContent = `${shown.length} shown of ${state.clients.length}${state.clients.length === clientsLimit ? '+' : ''}`;
    const rendered = JSON.stringify(shown);
    // Rebuilt only when something changed, so a row is not replaced under the pointer.
    if (rendered === state.clientsRendered) return;
    state.clientsRendered = rendered;
    const body = element('clients').tBodies[0];
    body.replaceChildren(...shown.map(clientRow));
  }

  function clientRow(client) {
    const row = document.createElement('tr');
    row.dataset.clientId = client.clientId;
    const since = new Date(client.connectedAt).toLocaleString();
    for (const text of [client.clientId, client.username ?? '', client.listener, client.remoteAddress, client.protocolVersion, since, client.queued, client.inflight, client.subscriptions]) {
      const cell = document.createElement('td');
      cell.textContent = String(text);
      row.append(cell);
    }
    row.append(actionCell('disconnect', 'Disconnect', client.clientId));
    return row;
  }

  function actionCell(action, label, key) {
    const cell = document.createElement('td');
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.action = action;
    button.dataset.key = key;
    button.textContent = label;
    cell.append(button);
    return cell;
  }

  // ---- retained messages -----------------------------------------------------------------------

  async function refreshRetained() {
    const filter = element('retained-filter').value.trim() || '#';
    const body = await api(`/api/v1/retained?filter=${encodeURIComponent(filter)}&limit=${retainedLimit}`);
    element('retained-count').textContent = `${body.items.length}${body.next === null ? '' : '+'} matching`;
    const rendered = JSON.stringify(body.items);
    if (rendered === state.retainedRendered) return;
    state.retainedRendered = rendered;
    element('retained').tBodies[0].replaceChildren(...body.items.map(retainedRow));
  }

  function retainedRow(message) {
    const row = document.createElement('tr');
    row.dataset.topic = message.topic;
    const payload = message.payloadText ?? `(${message.payloadBytes} bytes, not shown)`;
    for (const [text, kind] of [[message.topic], [message.qos], [message.payloadBytes], [payload, 'payload']]) {
      const cell = document.createElement('td');
      cell.textContent = String(text);
      if (kind !== undefined) cell.className = kind;
      row.append(cell);
    }
    // The broker's own $SYS figures cannot be deleted (it republishes them).
    if (message.topic.startsWith('$')) row.append(document.createElement('td'));
    else row.append(actionCell('delete-retained', 'Delete', message.topic));
    return row;
  }

  // ---- actions and the loop --------------------------------------------------------------------

  async function act(button) {
    const key = button.dataset.key;
    const path = button.dataset.action === 'disconnect' ? `/api/v1/clients/${encodeURIComponent(key)}` : `/api/v1/retained/${encodeURIComponent(key)}`;
    button.disabled = true;
    button.textContent = '…';
    try {
      await api(path, 'DELETE');
      showError(null);
      await refreshAll();
    } catch (error) {
      showError(error);
      button.disabled = false;
      button.textContent = 'Retry';
    }
  }

  async function refreshAll() {
    await refreshStatus();
    const results = await Promise.allSettled([refreshSeries(), refreshClients(), refreshRetained()]);
    const failed = results.find((result) => result.status === 'rejected');
    showError(failed === undefined ? null : failed.reason);
  }

  function start() {
    for (const id of ['clients', 'retained']) {
      element(id).addEventListener('click', (event) => {
        const button = event.target.closest('button[data-action]');
        if (button !== null) void act(button);
      });
    }
    element('client-search').addEventListener('input', renderClients);
    element('retained-filter').addEventListener('change', () => void refreshRetained().catch(showError));
    element('token-form').addEventListener('submit', (event) => {
      event.preventDefault();
      state.token = element('token').value.trim() || null;
      element('token-form').hidden = true;
      void refreshAll();
    });
    // Each refresh starts after the last one ended: a slow broker is never asked twice at once.
    const loop = async () => {
      await refreshAll();
      setTimeout(loop, refreshMs);
    };
    void loop();
  }

  // For tests and the curious: what the page holds.
  window.keelDashboard = state;
  start();
})();
