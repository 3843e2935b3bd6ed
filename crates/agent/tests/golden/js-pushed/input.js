// Warm the cache: request every item once.

async function getItem(base, id) {
  const r = await fetch(`${base}/v1/items/${encodeURIComponent(id)}`);
  await r.arrayBuffer();
  return r.status;
}

async function warm(base, ids) {
  const pending = [];
  for (const id of ids) {
    pending.push(getItem(base, id));
  }
  const statuses = await Promise.all(pending);
  return statuses.filter((s) => s !== 200).length;
}

module.exports = { warm, getItem };
