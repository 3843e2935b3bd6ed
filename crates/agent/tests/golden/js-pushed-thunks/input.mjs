import { fetchInvoice } from './billing.mjs';

export async function loadInvoices(ids) {
  const jobs = [];
  let skipped = 0;
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] < 0) {
      skipped++;
      continue;
    }
    jobs.push(fetchInvoice(ids[i]));
  }
  const settled = await Promise.allSettled(jobs);
  return { skipped, invoices: settled.filter((r) => r.status === 'fulfilled').map((r) => r.value) };
}
