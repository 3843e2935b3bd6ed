#!/usr/bin/env node
'use strict';
// `node src/cli.js sync`: one sync pass for every configured sales user, then a summary.

const fs = require('node:fs');
const path = require('node:path');
const { syncUser } = require('./sync');
const { buildIndex } = require('./match');
const { buildTimeline } = require('./timeline');

function loadConfig() {
  const file = process.env.RADAR_CONFIG || path.join(__dirname, '..', 'config', 'users.json');
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

async function syncAll() {
  const config = loadConfig();
  const index = buildIndex(config);
  const results = [];
  for (const user of config.users) {
    results.push(await syncUser(user, index));
  }
  const touches = results.flatMap((r) => r.touches);
  const timeline = buildTimeline(touches);
  for (const [i, user] of config.users.entries()) {
    const r = results[i];
    console.log(`${user.email}: ${r.fetched} messages, ${r.touches.length} touches, cursor ${r.cursor.newestId}`);
  }
  console.log(`accounts touched: ${timeline.size}, touches: ${touches.length}`);
}

const verb = process.argv[2] || 'sync';
if (verb !== 'sync') {
  console.error(`usage: cli.js sync`);
  process.exit(2);
}
syncAll().catch((err) => {
  console.error(err.stack || String(err));
  process.exit(1);
});
