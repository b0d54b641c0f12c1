// envd benchmark through the official e2b SDK (debug mode: envd on localhost, no control plane).
// Measures: commands.run("echo hi") round trip, 1 MiB write + read, envd cold start to first /health, idle RSS.
// Each figure comes with a peer measured in the same run on the same machine, and the ratio.
//
//   bench/envd/run.sh         (envd for the round trips runs through scripts/envd-sandboxed.sh, as in the e2e
//                              suite, so the user's shell reads a clean home; cold starts use a second port)
//
// Environment: ENVD_CMD  command that starts envd in the foreground on COLD_PORT for the cold-start runs (default:
//              <repo>/bin/capsule envd --port $COLD_PORT --default-user root); COLD_PORT (default 49990);
//              CAPSULE_ENVD_PORT (the running envd, default 49983); ROUNDS (default 300).
import { spawn, execFile } from 'node:child_process'
import { readFileSync, writeFileSync, readdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const port = Number(process.env.COLD_PORT ?? 49990)
const envdPort = Number(process.env.CAPSULE_ENVD_PORT ?? 49983)
const rounds = Number(process.env.ROUNDS ?? 300)
const envdCmd = process.env.ENVD_CMD ?? `${repo}/bin/capsule envd --port ${port} --default-user root`
const execFileAsync = promisify(execFile)

const median = (xs) => percentile(xs, 50)
function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}
const ms = (x) => x.toFixed(2)

async function time(fn) {
  const t0 = process.hrtime.bigint()
  await fn()
  return Number(process.hrtime.bigint() - t0) / 1e6
}

async function sample(n, fn) {
  const out = []
  for (let i = 0; i < n; i++) out.push(await time(fn))
  return out
}

/** Process ids of a process and all its descendants. */
function tree(pid) {
  const children = new Map()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const ppid = Number(readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1].split(' ')[1])
      if (!children.has(ppid)) children.set(ppid, [])
      children.get(ppid).push(Number(d))
    } catch {}
  }
  const all = [pid]
  for (let i = 0; i < all.length; i++) all.push(...(children.get(all[i]) ?? []))
  return all
}

/** A /proc/PID/status figure (VmRSS: all resident pages; RssAnon: the private ones) summed over processes. */
function rssKiB(pids, field = 'VmRSS') {
  let total = 0
  for (const p of pids) {
    try {
      const m = readFileSync(`/proc/${p}/status`, 'utf8').match(new RegExp(`${field}:\\s+(\\d+)`))
      if (m) total += Number(m[1])
    } catch {}
  }
  return total
}

async function healthy(p = port) {
  try {
    const r = await fetch(`http://localhost:${p}/health`)
    return r.status === 204 || r.status === 200
  } catch {
    return false
  }
}

/** Starts envd; resolves with its process and the ms from spawn to the first healthy /health. */
async function startEnvd(env = process.env) {
  if (await healthy()) throw new Error(`something already answers on port ${port}; stop it first`)
  const t0 = process.hrtime.bigint()
  const child = spawn('/bin/sh', ['-c', `exec ${envdCmd}`], { stdio: ['ignore', 'ignore', 'inherit'], detached: true, env })
  for (;;) {
    if (child.exitCode !== null) throw new Error(`envd exited with ${child.exitCode}`)
    if (await healthy()) return { child, startMs: Number(process.hrtime.bigint() - t0) / 1e6 }
    await new Promise((r) => setTimeout(r, 2))
  }
}

async function stopEnvd(child) {
  const exited = new Promise((r) => child.once('exit', r))
  process.kill(-child.pid, 'SIGTERM')
  await exited
}

async function main() {
  const { Sandbox } = await import('e2b')
  process.env.E2B_DEBUG = 'true'
  const results = []

  // Cold start: spawn to first /health, several times.
  const starts = []
  for (let i = 0; i < 7; i++) {
    const { child, startMs } = await startEnvd()
    starts.push(startMs)
    await stopEnvd(child)
  }
  // Peer for start-up: the same JVM printing its version (the floor any Java agent pays).
  const javaHome = process.env.JAVA_HOME ?? '/usr/lib/jvm/temurin-25-jdk-amd64'
  const javaStarts = await sample(7, () => execFileAsync(`${javaHome}/bin/java`, ['-Xshare:auto', '-version']))
  results.push(['envd cold start to first /health', median(starts), 'java -version', median(javaStarts)])
  // The same without the AOT cache (bin/capsule uses cli/target/capsule.aot when scripts/aot-train.sh made it).
  const plainStarts = []
  for (let i = 0; i < 7; i++) {
    const { child, startMs } = await startEnvd({ ...process.env, CAPSULE_AOT: 'off' })
    plainStarts.push(startMs)
    await stopEnvd(child)
  }
  results.push(['envd cold start, AOT cache off', median(plainStarts), 'java -version', median(javaStarts)])

  const { child } = await startEnvd()
  await new Promise((r) => setTimeout(r, 3000))
  const idleRss = rssKiB(tree(child.pid)) / 1024
  // Resident pages that are not file-backed: the AOT cache and the JDK's libraries are file pages every envd
  // on a host shares through the page cache; these are what each envd costs on its own.
  const idleAnon = rssKiB(tree(child.pid), 'RssAnon') / 1024
  await stopEnvd(child)
  if (!(await healthy(envdPort))) throw new Error(`no envd on port ${envdPort}: run this through bench/envd/run.sh`)
  {

    const sbx = await Sandbox.create({ debug: true })
    await sample(50, () => sbx.commands.run('echo hi'))
    // The peer: the same login shell started directly, with an empty home as the sandboxed user has. Rounds
    // alternate between the two, so that load from elsewhere on the machine hits both alike; the overhead is the
    // median of each round's difference.
    const home = mkdtempSync(join(tmpdir(), 'capsule-bench-home-'))
    const shell = () => execFileAsync('/bin/bash', ['-l', '-c', 'echo hi'], { env: { HOME: home, PATH: process.env.PATH } })
    await sample(20, shell)
    const echo = [], localEcho = [], overhead = []
    for (let i = 0; i < rounds; i++) {
      const a = await time(() => sbx.commands.run('echo hi'))
      const b = await time(shell)
      echo.push(a); localEcho.push(b); overhead.push(a - b)
    }
    rmSync(home, { recursive: true, force: true })
    results.push(['commands.run("echo hi") p50', median(echo), 'local bash -l -c "echo hi" p50', median(localEcho)])
    results.push(['commands.run("echo hi") p90', percentile(echo, 90), 'local p90', percentile(localEcho, 90)])
    results.push(['commands.run overhead (p50 of capsule - peer, per round)', median(overhead), '', NaN])

    const mib = new Uint8Array(1024 * 1024).map((_, i) => (i * 31) & 0xff)
    const path = '/tmp/capsule-bench-1mib'
    await sample(10, async () => { await sbx.files.write(path, mib); await sbx.files.read(path, { format: 'bytes' }) })
    const io = await sample(Math.min(rounds, 100), async () => {
      await sbx.files.write(path, mib)
      const back = await sbx.files.read(path, { format: 'bytes' })
      if (back.length !== mib.length) throw new Error('read back a different size')
    })
    const dir = mkdtempSync(join(tmpdir(), 'capsule-bench-'))
    const { writeFile, readFile } = await import('node:fs/promises')
    const localIo = await sample(Math.min(rounds, 100), async () => {
      await writeFile(join(dir, 'f'), mib)
      await readFile(join(dir, 'f'))
    })
    rmSync(dir, { recursive: true, force: true })
    await sbx.files.remove(path)
    results.push(['1 MiB files.write + files.read p50', median(io), 'local fs write + read p50', median(localIo)])
    results.push(['envd idle RSS (MiB, after 3 s idle)', idleRss, '', NaN])
    results.push(['envd idle private (anonymous) RSS (MiB)', idleAnon, '', NaN])
  }

  const lines = [
    `| measure | capsule | peer | peer value | ratio |`,
    `|---|---|---|---|---|`,
    ...results.map(([name, v, peer, pv]) =>
      `| ${name} | ${ms(v)} | ${peer || '-'} | ${Number.isNaN(pv) ? '-' : ms(pv)} | ${Number.isNaN(pv) ? '-' : (v / pv).toFixed(2) + '×'} |`),
  ]
  const report = [`envd benchmark, ${new Date().toISOString()}, ${rounds} rounds, times in ms`, '', ...lines].join('\n')
  console.log(report)
  if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, report + '\n')
}

main().catch((e) => { console.error(e); process.exit(1) })
