// The retryable statuses in a constant set outside the loop; the retry a `continue` from a catch.
const { request } = require('undici');

const RETRYABLE = new Set([429, 502, 503]);
const MAX_ATTEMPTS = 4;

class Retryable extends Error {}

async function getJson(url) {
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    try {
      const { statusCode, body } = await request(url);
      if (RETRYABLE.has(statusCode)) {
        await body.dump();
        throw new Retryable(String(statusCode));
      }
      return await body.json();
    } catch (err) {
      if (err instanceof Retryable && attempt < MAX_ATTEMPTS) {
        continue;
      }
      throw err;
    }
  }
  throw new Error('unreachable');
}

module.exports = { getJson };
