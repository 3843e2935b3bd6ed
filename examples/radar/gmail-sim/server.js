#!/usr/bin/env node
'use strict';
// A Gmail API simulator for users.messages.list and users.messages.get.
//
// - Each bearer token is one user with a deterministic mailbox of SENT messages.
// - Like Gmail's per-user concurrent-request limit, more than LIMIT requests in flight for one
//   user are answered 429 with Google's error body and a Retry-After header.
// - Latency is realistic and deterministic per request (list ~90-140 ms, get ~30-90 ms).
//
// Usage: node server.js [PORT]   (PORT 0 picks a free port; the first stdout line names it)
// Env: LIMIT (default 20), MESSAGES per user (default 150), LATENCY_SCALE (default 1).

const http = require('node:http');

const LIMIT = Number(process.env.LIMIT || 20);
const MESSAGES = Number(process.env.MESSAGES || 150);
const SCALE = Number(process.env.LATENCY_SCALE || 1);
const PAGE = 100;
const RECIPIENTS = [
  'Wile E. <wile@acme.example>',
  'hank@globex.example',
  'Peter Gibbons <peter@initech.example>',
  'alice@umbrella.example',
  'ops@globex-eu.example',
  'someone@gmail.example',
];

// FNV-1a: deterministic "randomness" from a string.
function hash(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

function messageIds(token) {
  const base = hash(token);
  return Array.from({ length: MESSAGES }, (_, i) =>
    ((base ^ (i * 2654435761)) >>> 0).toString(16).padStart(8, '0') + (0x18c00000 + i).toString(16));
}

const inflight = new Map();

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=UTF-8', ...headers });
  res.end(text);
}

function tooMany(res) {
  send(res, 429, {
    error: {
      code: 429,
      message: 'Too many concurrent requests for user.',
      errors: [{ message: 'Too many concurrent requests for user.', domain: 'global', reason: 'rateLimitExceeded' }],
      status: 'RESOURCE_EXHAUSTED',
    },
  }, { 'Retry-After': '1' });
}

function notFound(res, what) {
  send(res, 404, { error: { code: 404, message: `Requested entity was not found: ${what}`, status: 'NOT_FOUND' } });
}

function handle(req, res, token, url) {
  const ids = messageIds(token);
  const list = url.pathname.match(/^\/gmail\/v1\/users\/([^/]+)\/messages$/);
  if (list) {
    const start = Number(url.searchParams.get('pageToken') || 0);
    const max = Math.min(Number(url.searchParams.get('maxResults') || PAGE), 500);
    const slice = ids.slice(start, start + max);
    const body = { messages: slice.map((id) => ({ id, threadId: id })), resultSizeEstimate: ids.length };
    if (start + max < ids.length) body.nextPageToken = String(start + max);
    return { delay: 90 + (hash(url.search) % 50), reply: () => send(res, 200, body) };
  }
  const get = url.pathname.match(/^\/gmail\/v1\/users\/([^/]+)\/messages\/([^/]+)$/);
  if (get) {
    const id = decodeURIComponent(get[2]);
    const n = ids.indexOf(id);
    if (n < 0) return { delay: 20, reply: () => notFound(res, id) };
    const when = Date.UTC(2026, 10, 20) - n * 3_600_000;
    const body = {
      id,
      threadId: id,
      labelIds: ['SENT'],
      snippet: `Following up on our call (${n})`,
      internalDate: String(when),
      payload: {
        headers: [
          { name: 'To', value: RECIPIENTS[hash(id) % RECIPIENTS.length] },
          { name: 'Subject', value: `Follow-up #${n}` },
          { name: 'Date', value: new Date(when).toUTCString() },
        ],
      },
      sizeEstimate: 2048 + (hash(id) % 4096),
    };
    return { delay: 30 + (hash(id) % 60), reply: () => send(res, 200, body) };
  }
  return { delay: 5, reply: () => notFound(res, url.pathname) };
}

const server = http.createServer((req, res) => {
  const auth = req.headers.authorization || '';
  const token = auth.replace(/^Bearer\s+/i, '');
  if (!token) {
    return send(res, 401, { error: { code: 401, message: 'Request is missing required authentication credential.', status: 'UNAUTHENTICATED' } });
  }
  const url = new URL(req.url, 'http://gmail.sim');
  const now = inflight.get(token) || 0;
  if (now >= LIMIT) {
    return setTimeout(() => tooMany(res), 5 * SCALE);
  }
  inflight.set(token, now + 1);
  const { delay, reply } = handle(req, res, token, url);
  setTimeout(() => {
    inflight.set(token, (inflight.get(token) || 1) - 1);
    reply();
  }, delay * SCALE);
});
server.keepAliveTimeout = 5000;

server.listen(Number(process.argv[2] || process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`gmail-sim listening on http://127.0.0.1:${server.address().port} (limit ${LIMIT} in flight per user)`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
process.on('SIGINT', () => server.close(() => process.exit(0)));
