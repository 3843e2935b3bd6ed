'use strict';
const { Gmail } = require('./gmail');

async function syncPage(gmail, refs) {
  const messages = await Promise.all(refs.map((ref) => gmail.getMessage(ref.id)));
  return messages.filter(Boolean);
}

module.exports = { syncPage };
