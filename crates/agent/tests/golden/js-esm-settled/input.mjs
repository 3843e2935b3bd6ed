import { fetchInvoice } from "./billing.mjs"

export async function loadInvoices(ids) {
    const results = await Promise.allSettled(ids.map(fetchInvoice))
    return results.filter((r) => r.status === "fulfilled").map((r) => r.value)
}
