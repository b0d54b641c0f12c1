// Time to interactive: from "make me a sandbox" to the output of its first command, p50/p95, for capsule (the
// official e2b SDK against `capsule server`), `docker run` and bare `runc run` of the same rootfs. run.sh drives
// it one phase at a time (it owns the servers and daemons, so a crash here leaves nothing running):
//
//   node bench.mjs exec    LABEL ROUNDS CONCURRENCY -- CMD ARGS...   ({i} in an argument becomes the run number)
//   node bench.mjs capsule LABEL ROUNDS CONCURRENCY POOL_SIZE        (server from E2B_API_URL, key E2B_API_KEY)
//   node bench.mjs report  RESULTS.jsonl                              (prints the markdown table)
//
// Each phase appends one JSON line per measured series to $BENCH_RESULTS. A series runs ROUNDS samples, sequentially
// (CONCURRENCY 1) or with CONCURRENCY workers taking samples until ROUNDS are done; 3 warm-up samples first are not
// counted. capsule phases also need CAPSULE_DATA_DIR (to tell pool hits: a hit's container started before the
// create call) and, with a pool, CAPSULE_RUNC_ROOT and CAPSULE_NETWORK_NAME (to wait until the pool is full).
import { spawn, execFile } from 'node:child_process'
import { readFileSync, appendFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'

const execFileAsync = promisify(execFile)
const WARMUP = 3
const resultsFile = process.env.BENCH_RESULTS

function percentile(xs, p) {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)]
}
const now = () => performance.now()

/** Runs `sample(i)` ROUNDS times with `concurrency` workers; returns the samples in completion order. */
async function series(rounds, concurrency, sample) {
  const out = []
  let next = 0
  const worker = async () => {
    while (next < rounds) {
      const i = next++
      out.push(await sample(i))
    }
  }
  const t0 = now()
  await Promise.all(Array.from({ length: concurrency }, worker))
  return { samples: out, wallMs: now() - t0 }
}

function record(entry) {
  const line = JSON.stringify(entry)
  if (resultsFile) appendFileSync(resultsFile, line + '\n')
  const s = (k) => entry.summary[k]
  console.log(`${entry.label} c=${entry.concurrency}: p50 ${s('p50').toFixed(1)} ms, p95 ${s('p95').toFixed(1)} ms`
    + (entry.poolHits !== undefined ? `, pool hits ${entry.poolHits}/${entry.samples.length}` : ''))
}

function summarize(values) {
  return { p50: percentile(values, 50), p95: percentile(values, 95), min: Math.min(...values), max: Math.max(...values) }
}

// ---- exec: docker run / runc run --------------------------------------------------------------------------------

/** Spawns the command; resolves with ms to the first "hi" on stdout and ms to exit (status 0 required). */
function execOnce(argv) {
  return new Promise((resolve, reject) => {
    const t0 = now()
    let firstOutput = null
    let stdout = ''
    let stderr = ''
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.on('data', (d) => {
      stdout += d
      if (firstOutput === null && stdout.includes('hi')) firstOutput = now() - t0
    })
    child.stderr.on('data', (d) => { stderr += d })
    child.on('error', reject)
    child.on('close', (code) => {
      const exitMs = now() - t0
      if (code !== 0 || stdout !== 'hi\n') {
        reject(new Error(`${argv.join(' ')} exited ${code} with stdout ${JSON.stringify(stdout)}, stderr ${stderr.trim()}`))
      } else {
        resolve({ ttiMs: firstOutput, exitMs })
      }
    })
  })
}

async function execPhase(label, rounds, concurrency, template) {
  const argv = (i) => template.map((a) => a.replaceAll('{i}', String(i)))
  for (let i = 0; i < WARMUP; i++) await execOnce(argv(`w${concurrency}-${i}`))
  const { samples, wallMs } = await series(rounds, concurrency, (i) => execOnce(argv(`c${concurrency}-${i}`)))
  record({
    kind: 'exec', label, concurrency, rounds, wallMs, command: template.join(' '), samples,
    summary: summarize(samples.map((s) => s.ttiMs)),
    parts: { exitMs: summarize(samples.map((s) => s.exitMs)) },
  })
}

// ---- capsule -----------------------------------------------------------------------------------------------------

async function runningContainers() {
  const { stdout } = await execFileAsync('runc', ['--root', process.env.CAPSULE_RUNC_ROOT, 'list', '-q'])
  return stdout.split('\n').filter(Boolean)
}

/** Whether envd in the sandbox answers /health (the pool adds a sandbox only once it does). */
async function healthy(id) {
  try {
    const ns = `${process.env.CAPSULE_NETWORK_NAME}-${id}`
    const { stdout } = await execFileAsync('ip', ['-n', ns, '-4', '-o', 'addr', 'show', 'eth0'])
    const address = stdout.match(/inet (\d+\.\d+\.\d+\.\d+)/)[1]
    const res = await fetch(`http://${address}:49983/health`, { signal: AbortSignal.timeout(2000) })
    return res.status === 204
  } catch {
    return false
  }
}

/** Waits until `size` idle sandboxes run and answer (nothing else of ours runs between series). */
async function awaitPoolFull(size) {
  const deadline = Date.now() + 300_000
  const t0 = now()
  for (;;) {
    const ids = await runningContainers()
    if (ids.length >= size && (await Promise.all(ids.map(healthy))).filter(Boolean).length >= size) {
      // the pool adds a sandbox just after its health check answers: give it that moment
      await sleep(200)
      return now() - t0
    }
    if (Date.now() > deadline) throw new Error(`warm pool did not fill to ${size} within 300 s (running: ${ids.length})`)
    await sleep(250)
  }
}

/** The wall-clock time the sandbox's container was started, from the driver's record in the data dir. */
function containerStartedAt(id) {
  try {
    const meta = JSON.parse(readFileSync(join(process.env.CAPSULE_DATA_DIR, 'sandboxes', id, 'sandbox.json'), 'utf8'))
    return Date.parse(meta.startedAt)
  } catch {
    return NaN
  }
}

async function capsuleOnce(Sandbox) {
  const wallStart = Date.now()
  const t0 = now()
  const sandbox = await Sandbox.create({ timeoutMs: 300_000 })
  const t1 = now()
  const first = await sandbox.commands.run('echo hi')
  const t2 = now()
  if (first.stdout !== 'hi\n') throw new Error(`echo hi in ${sandbox.sandboxId} gave ${JSON.stringify(first.stdout)}`)
  // Not part of time to interactive: how much of the first command was first-time cost, and what a kill costs.
  const t3 = now()
  await sandbox.commands.run('echo hi')
  const t4 = now()
  const pooled = containerStartedAt(sandbox.sandboxId) < wallStart
  const t5 = now()
  const killed = await sandbox.kill()
  const t6 = now()
  if (killed !== true) throw new Error(`kill of ${sandbox.sandboxId} returned ${killed}`)
  return { ttiMs: t2 - t0, createMs: t1 - t0, firstRunMs: t2 - t1, secondRunMs: t4 - t3, killMs: t6 - t5, pooled }
}

async function capsulePhase(label, rounds, concurrency, poolSize) {
  const { Sandbox } = await import('e2b')
  for (let i = 0; i < WARMUP; i++) await capsuleOnce(Sandbox)
  const poolFillMs = poolSize > 0 ? await awaitPoolFull(poolSize) : 0
  const { samples, wallMs } = await series(rounds, concurrency, () => capsuleOnce(Sandbox))
  const parts = {}
  for (const k of ['createMs', 'firstRunMs', 'secondRunMs', 'killMs']) parts[k] = summarize(samples.map((s) => s[k]))
  const hits = samples.filter((s) => s.pooled)
  const misses = samples.filter((s) => !s.pooled)
  record({
    kind: 'capsule', label, concurrency, rounds, poolSize, wallMs, poolFillMs, samples,
    poolHits: hits.length,
    summary: summarize(samples.map((s) => s.ttiMs)),
    hitSummary: hits.length ? summarize(hits.map((s) => s.ttiMs)) : null,
    missSummary: misses.length ? summarize(misses.map((s) => s.ttiMs)) : null,
    parts,
  })
  const left = await Sandbox.list().nextItems()
  if (left.length) throw new Error(`sandboxes left running after the series: ${left.map((s) => s.sandboxId)}`)
}

// ---- report ------------------------------------------------------------------------------------------------------

function report(file) {
  const entries = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l))
  const docker = new Map(entries.filter((e) => e.label === 'docker run').map((e) => [e.concurrency, e.summary]))
  const f = (x) => (x === null || x === undefined || Number.isNaN(x) ? '–' : x.toFixed(1))
  const ratio = (a, b) => (b ? `${(a / b).toFixed(2)}×` : '–')
  const lines = [
    '| what | concurrency | n | p50 ms | p95 ms | p50 / docker p50 | p95 / docker p95 | pool hits | p50 hit / miss ms | wall s |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ]
  for (const e of entries) {
    const d = docker.get(e.concurrency)
    lines.push(`| ${e.label} | ${e.concurrency} | ${e.samples.length} | ${f(e.summary.p50)} | ${f(e.summary.p95)} | `
      + `${ratio(e.summary.p50, d?.p50)} | ${ratio(e.summary.p95, d?.p95)} | `
      + `${e.kind === 'capsule' && e.poolSize > 0 ? `${e.poolHits}/${e.samples.length}` : '–'} | `
      + `${e.kind === 'capsule' && e.poolSize > 0 ? `${f(e.hitSummary?.p50)} / ${f(e.missSummary?.p50)}` : '–'} | `
      + `${(e.wallMs / 1000).toFixed(1)} |`)
  }
  lines.push('', 'Where capsule\'s time goes (p50 / p95 ms of each step; TTI = create + first command):', '',
    '| series | concurrency | create | first `echo hi` | second `echo hi` | kill | pool refill wait before series |',
    '|---|---|---|---|---|---|---|')
  for (const e of entries.filter((x) => x.kind === 'capsule')) {
    const p = (k) => `${f(e.parts[k].p50)} / ${f(e.parts[k].p95)}`
    lines.push(`| ${e.label} | ${e.concurrency} | ${p('createMs')} | ${p('firstRunMs')} | ${p('secondRunMs')} | `
      + `${p('killMs')} | ${e.poolSize > 0 ? (e.poolFillMs / 1000).toFixed(1) + ' s' : '–'} |`)
  }
  lines.push('', 'docker/runc: time to "hi" on stdout; the process exits (and `--rm` removes the container) at p50 / p95 ms:', '')
  for (const e of entries.filter((x) => x.kind === 'exec')) {
    lines.push(`- ${e.label}, concurrency ${e.concurrency}: exit ${f(e.parts.exitMs.p50)} / ${f(e.parts.exitMs.p95)} — \`${e.command}\``)
  }
  console.log(lines.join('\n'))
}

// ---- main --------------------------------------------------------------------------------------------------------

const [mode, ...args] = process.argv.slice(2)
if (mode === 'exec') {
  const sep = args.indexOf('--')
  await execPhase(args[0], Number(args[1]), Number(args[2]), args.slice(sep + 1))
} else if (mode === 'capsule') {
  await capsulePhase(args[0], Number(args[1]), Number(args[2]), Number(args[3]))
} else if (mode === 'report') {
  report(args[0])
} else {
  console.error('usage: node bench.mjs exec|capsule|report ... (see the header of bench.mjs)')
  process.exit(2)
}
