// Persistence figures of a capsule server (run.sh owns the server; this script only talks to it):
//
//   node bench.mjs measure          (server from E2B_API_URL, key E2B_API_KEY; CAPSULE_DATA_DIR and
//                                    CAPSULE_RUNC_ROOT of that server for the driver-level timings)
//   node bench.mjs report FILE      (prints the markdown table of the JSON lines in FILE)
//
// Every series appends one JSON line ({label, unit, samples, summary}) to $BENCH_RESULTS. Pause and resume go
// through the REST API with plain fetch (what the SDK sends, without its client-side work); creates and commands
// use the official SDK. Each series starts with 3 warm-up samples that are not counted.
import { execFile } from 'node:child_process'
import { appendFileSync, existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const WARMUP = 3
const ROUNDS = Number(process.env.ROUNDS ?? 50)
const SNAPSHOT_ROUNDS = Number(process.env.SNAPSHOT_ROUNDS ?? 5)
const API = process.env.E2B_API_URL
const KEY = process.env.E2B_API_KEY
const now = () => performance.now()

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)]
}

function record(label, samples, note = '') {
  const summary = { p50: percentile(samples, 50), p95: percentile(samples, 95), min: Math.min(...samples), max: Math.max(...samples) }
  appendFileSync(process.env.BENCH_RESULTS, JSON.stringify({ label, note, samples, summary }) + '\n')
  console.log(`${label}: p50 ${summary.p50.toFixed(1)} ms, p95 ${summary.p95.toFixed(1)} ms (n=${samples.length})`)
}

async function api(method, path, body, expected) {
  const res = await fetch(`${API}${path}`, {
    method,
    headers: { 'X-API-Key': KEY, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  })
  const text = await res.text()
  if (res.status !== expected) throw new Error(`${method} ${path}: ${res.status} ${text}`)
  return text ? JSON.parse(text) : null
}

async function timed(fn) {
  const t0 = now()
  await fn()
  return now() - t0
}

/** Runs `cycle` WARMUP + rounds times; each returns {series: ms}; records every series. */
async function measureCycles(rounds, cycle, labels) {
  for (let i = 0; i < WARMUP; i++) await cycle()
  const samples = Object.fromEntries(Object.keys(labels).map((k) => [k, []]))
  for (let i = 0; i < rounds; i++) {
    const times = await cycle()
    for (const k of Object.keys(labels)) samples[k].push(times[k])
  }
  for (const [k, label] of Object.entries(labels)) record(label, samples[k])
}

async function measure() {
  const { Sandbox } = await import('e2b')
  const sandbox = await Sandbox.create('base', { timeoutMs: 3_600_000 })
  const id = sandbox.sandboxId
  try {
    // a little state to keep: a file and a process
    await sandbox.files.write('state.txt', 'kept')
    await sandbox.commands.run('sleep 100000', { background: true })

    await measureCycles(ROUNDS, async () => ({
      pause: await timed(() => api('POST', `/sandboxes/${id}/pause`, {}, 204)),
      resume: await timed(() => api('POST', `/v2/sandboxes/${id}/connect`, { timeout: 3600 }, 201)),
    }), { pause: 'pause with memory (API: freeze + flush)', resume: 'resume with memory (API: connect, thaw)' })

    // the driver's own freeze and thaw: the commands the oci driver runs, on the bench server's runc root
    const runcRoot = process.env.CAPSULE_RUNC_ROOT
    // the upper dir is on the sandbox's own disk (disk/upper), or directly in its directory on older layouts
    const dir = join(process.env.CAPSULE_DATA_DIR, 'sandboxes', id)
    const upper = existsSync(join(dir, 'disk', 'upper')) ? join(dir, 'disk', 'upper') : join(dir, 'upper')
    await measureCycles(ROUNDS, async () => {
      const freeze = await timed(() => run('runc', ['--root', runcRoot, 'pause', id]))
      const flush = await timed(() => run('sync', ['-f', upper]))
      const thaw = await timed(() => run('runc', ['--root', runcRoot, 'resume', id]))
      return { freeze, flush, freezeFlush: freeze + flush, thaw }
    }, {
      freeze: 'driver: freeze (runc pause)',
      flush: 'driver: flush (sync -f of the upper dir)',
      freezeFlush: 'driver: pause = freeze + flush',
      thaw: 'driver: thaw (runc resume)',
    })
    if ((await sandbox.commands.run('cat state.txt')).stdout !== 'kept') throw new Error('the state file changed')

    const coldRounds = Math.max(5, Math.round(ROUNDS / 5))
    await measureCycles(coldRounds, async () => ({
      pause: await timed(() => api('POST', `/sandboxes/${id}/pause`, { memory: false }, 204)),
      resume: await timed(async () => {
        await api('POST', `/v2/sandboxes/${id}/connect`, { timeout: 3600 }, 201)
        await sandbox.commands.run('true')
      }),
    }), {
      pause: 'pause without memory (API: flush, stop, release)',
      resume: 'resume without memory (API: cold boot + /init, to a first command)',
    })
  } finally {
    await Sandbox.kill(id)
  }

  for (const mib of [1, 10, 100]) {
    const source = await Sandbox.create('base', { timeoutMs: 3_600_000 })
    try {
      await source.commands.run(`head -c ${mib}M /dev/urandom > /home/user/blob`)
      const samples = []
      for (let i = 0; i < SNAPSHOT_ROUNDS + 1; i++) {
        let snapshot
        const ms = await timed(async () => { snapshot = await api('POST', `/sandboxes/${source.sandboxId}/snapshots`, {}, 201) })
        await api('DELETE', `/templates/${encodeURIComponent(snapshot.snapshotID)}`, undefined, 204)
        if (i > 0) samples.push(ms) // the first is a warm-up
      }
      record(`snapshot, ${mib} MiB written`, samples)
    } finally {
      await Sandbox.kill(source.sandboxId)
    }
  }

  const source = await Sandbox.create('base', { timeoutMs: 3_600_000 })
  let snapshotId
  try {
    await source.commands.run('head -c 10M /dev/urandom > /home/user/blob')
    snapshotId = (await source.createSnapshot({ name: 'bench-tti' })).snapshotId
  } finally {
    await Sandbox.kill(source.sandboxId)
  }
  const tti = async (template) => {
    const t0 = now()
    const s = await Sandbox.create(template, { timeoutMs: 300_000 })
    const out = await s.commands.run('echo hi')
    const ms = now() - t0
    if (out.stdout !== 'hi\n') throw new Error(`unexpected output ${JSON.stringify(out.stdout)}`)
    await Sandbox.kill(s.sandboxId)
    return ms
  }
  // alternating, so both series see the same load
  await measureCycles(ROUNDS, async () => ({ snapshot: await tti(snapshotId), base: await tti('base') }), {
    snapshot: 'create from a snapshot (10 MiB) to first command output',
    base: 'create from base, no pool, to first command output',
  })
  await Sandbox.deleteSnapshot(snapshotId)
}

function report(file) {
  const entries = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  const f = (x) => x.toFixed(1)
  const lines = ['| what | n | p50 ms | p95 ms | min ms | max ms |', '|---|---|---|---|---|---|']
  for (const e of entries) {
    lines.push(`| ${e.label} | ${e.samples.length} | ${f(e.summary.p50)} | ${f(e.summary.p95)} | ${f(e.summary.min)} | ${f(e.summary.max)} |`)
  }
  console.log(lines.join('\n'))
}

const [mode, ...args] = process.argv.slice(2)
if (mode === 'measure') {
  await measure()
} else if (mode === 'report') {
  report(args[0])
} else {
  console.error('usage: node bench.mjs measure | report FILE (see the header of bench.mjs)')
  process.exit(2)
}
