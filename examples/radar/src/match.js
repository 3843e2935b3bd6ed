'use strict';
// Matching message recipients to CRM accounts and contacts.

function parseAddresses(header) {
  if (!header) return [];
  return header
    .split(',')
    .map((part) => {
      const m = part.match(/<([^>]+)>/);
      return (m ? m[1] : part).trim().toLowerCase();
    })
    .filter((addr) => addr.includes('@'));
}

function buildIndex(config) {
  const byDomain = new Map();
  for (const account of config.accounts) {
    for (const domain of account.domains) byDomain.set(domain, account);
  }
  const contacts = new Map(config.contacts.map((c) => [c.email.toLowerCase(), c]));
  return { byDomain, contacts };
}

// The account and (when known) the contact a recipient address belongs to.
function matchRecipient(index, address) {
  const contact = index.contacts.get(address) || null;
  const domain = address.split('@')[1];
  const account = index.byDomain.get(domain) || null;
  if (!account) return null;
  return { account: account.id, contact: contact ? contact.email : null };
}

module.exports = { parseAddresses, buildIndex, matchRecipient };
