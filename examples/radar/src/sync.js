'use strict';
// Syncs one sales user's sent mail: page through message ids, fetch each message's metadata,
// turn recipients into touches, advance the user's cursor.

const { Gmail } = require('./gmail');
const { touchesOf } = require('./timeline');

async function fetchMessage(gmail, ref) {
  try {
    return await gmail.getMessage(ref.id);
  } catch (err) {
    // A failed fetch is skipped; the next sync starts after the cursor anyway.
    return null;
  }
}

async function syncUser(user, index, cursor = {}) {
  const gmail = new Gmail(user.token);
  const touches = [];
  let pageToken;
  let newest = cursor.newestId || null;
  let fetched = 0;
  do {
    const page = await gmail.listSentMessages(pageToken);
    const refs = page.messages || [];
    const messages = await Promise.all(refs.map((ref) => fetchMessage(gmail, ref)));
    for (const message of messages) {
      if (!message) continue;
      fetched += 1;
      touches.push(...touchesOf(index, user, message));
    }
    if (!newest && refs.length > 0) newest = refs[0].id;
    pageToken = page.nextPageToken;
  } while (pageToken);
  return { touches, fetched, cursor: { newestId: newest, syncedAt: Date.now() } };
}

module.exports = { syncUser, fetchMessage };
