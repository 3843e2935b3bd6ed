async function getWithRetry(url, tries = 5) {
  for (let attempt = 0; attempt < tries; attempt++) {
    const res = await fetch(url);
    if (res.status === 429) continue;
    if (res.ok) return res.json();
  }
  throw new Error(`gave up on ${url}`);
}

module.exports = { getWithRetry };
