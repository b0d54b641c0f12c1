// Many creates at once against a running server (default 20): each one's status and time, then kills them all.
// Run it through the test harness, with the driver under test:
//   CAPSULE_SERVER_ARGS="--runtime microvm --warm-pool-size 0" scripts/server-for-tests.sh run -- node bench/microvm/burst.mjs [N]
const n = Number(process.argv[2] || 20)
const headers = { 'X-API-Key': process.env.E2B_API_KEY, 'Content-Type': 'application/json' }
const api = process.env.E2B_API_URL
console.log(`${n} creates at once; load average before: ${(await import('node:fs')).readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`)
const begin = Date.now()
const results = await Promise.all(Array.from({ length: n }, async () => {
  const start = Date.now()
  try {
    const res = await fetch(`${api}/sandboxes`, { method: 'POST', headers, body: JSON.stringify({ templateID: 'base', timeout: 300 }),
      signal: AbortSignal.timeout(600_000) })
    const body = await res.json()
    return { status: res.status, ms: Date.now() - start, id: body.sandboxID, message: body.message }
  } catch (err) {
    return { status: 'error', ms: Date.now() - start, message: String(err) }
  }
}))
results.sort((a, b) => a.ms - b.ms)
for (const r of results) console.log(r.status, `${r.ms} ms`, r.message ? r.message.slice(0, 300) : '')
const ok = results.filter((r) => r.status === 201)
console.log(`${ok.length} of ${n} created; fastest ${results[0].ms} ms, slowest ${results.at(-1).ms} ms; all answered in ${Date.now() - begin} ms`)
console.log(`load average after: ${(await import('node:fs')).readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`)
await Promise.all(ok.map((r) => fetch(`${api}/sandboxes/${r.id}`, { method: 'DELETE', headers })))
