'use strict';
// Touches (a sales user e-mailing an account) and the per-account timeline built from them.

const { parseAddresses, matchRecipient } = require('./match');

function header(message, name) {
  const headers = (message.payload && message.payload.headers) || [];
  const h = headers.find((x) => x.name.toLowerCase() === name.toLowerCase());
  return h ? h.value : null;
}

// Every touch one message represents: one per matched recipient account.
function touchesOf(index, user, message) {
  const seen = new Set();
  const touches = [];
  for (const address of parseAddresses(header(message, 'To'))) {
    const m = matchRecipient(index, address);
    if (!m || seen.has(m.account)) continue;
    seen.add(m.account);
    touches.push({
      account: m.account,
      contact: m.contact,
      user: user.email,
      messageId: message.id,
      subject: header(message, 'Subject') || '',
      at: Number(message.internalDate),
    });
  }
  return touches;
}

// Touches grouped by account, newest first.
function buildTimeline(touches) {
  const byAccount = new Map();
  for (const t of touches) {
    if (!byAccount.has(t.account)) byAccount.set(t.account, []);
    byAccount.get(t.account).push(t);
  }
  for (const list of byAccount.values()) list.sort((a, b) => b.at - a.at);
  return byAccount;
}

module.exports = { header, touchesOf, buildTimeline };
