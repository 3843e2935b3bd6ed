'use strict';
// A minimal Gmail API client (users.messages.list / users.messages.get) on Node's fetch.
// The base URL comes from GMAIL_API_URL so tests and harnesses can point it elsewhere.

const DEFAULT_BASE_URL = 'https://gmail.googleapis.com';

class GmailError extends Error {
  constructor(status, body) {
    super(`gmail: HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

class Gmail {
  constructor(token, baseUrl = process.env.GMAIL_API_URL || DEFAULT_BASE_URL) {
    this.token = token;
    this.baseUrl = baseUrl.replace(/\/$/, '');
  }

  async request(path) {
    const res = await fetch(`${this.baseUrl}${path}`, {
      headers: { Authorization: `Bearer ${this.token}`, Accept: 'application/json' },
    });
    const text = await res.text();
    if (!res.ok) {
      throw new GmailError(res.status, text);
    }
    return JSON.parse(text);
  }

  // One page of sent message ids (at most 100), newest first.
  listSentMessages(pageToken) {
    const q = new URLSearchParams({ labelIds: 'SENT', maxResults: '100' });
    if (pageToken) q.set('pageToken', pageToken);
    return this.request(`/gmail/v1/users/me/messages?${q}`);
  }

  // Metadata (To, Subject, Date) of one message.
  getMessage(id) {
    const q = 'format=metadata&metadataHeaders=To&metadataHeaders=Subject&metadataHeaders=Date';
    return this.request(`/gmail/v1/users/me/messages/${encodeURIComponent(id)}?${q}`);
  }
}

module.exports = { Gmail, GmailError };
