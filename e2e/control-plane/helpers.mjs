// Shared set-up for the control-plane suite: the official e2b SDK pointed at a real `capsule server` (started by
// scripts/server-for-tests.sh, which exports E2B_API_URL, E2B_SANDBOX_URL, E2B_API_KEY and CAPSULE_SERVER_*),
// raw API calls for exact statuses and bodies, and requests to user ports through the gateway's Host routing.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'

import { Sandbox } from 'e2b'

for (const name of ['E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_API_KEY', 'CAPSULE_SERVER_PORT']) {
  if (!process.env[name]) {
    throw new Error(`${name} is not set: run this suite through scripts/server-for-tests.sh run -- node --test ...`)
  }
}
if (process.env.E2B_DEBUG === 'true') throw new Error('E2B_DEBUG=true bypasses the API; unset it for this suite')

export const API = process.env.E2B_API_URL
export const KEY = process.env.E2B_API_KEY
export const PORT = Number(process.env.CAPSULE_SERVER_PORT)
export const DATA_DIR = process.env.CAPSULE_SERVER_DATA_DIR
export const HOME = '/home/user'

/** Unique per run, so metadata filters only ever see this run's sandboxes. */
export const RUN = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`

const created = new Set()

/** Sandbox.create of the base template (or another, e.g. a snapshot), remembered so that {@link killCreated} can end it. */
export async function create(opts = {}, template = 'base') {
  const sandbox = await Sandbox.create(template, { timeoutMs: 120_000, ...opts })
  created.add(sandbox.sandboxId)
  return sandbox
}

/** Remembers a sandbox made some other way (e.g. a fork) so that {@link killCreated} ends it too. */
export function track(sandbox) {
  created.add(sandbox.sandboxId)
  return sandbox
}

/** Kills every sandbox {@link create} made that is still alive; use in `after`. */
export async function killCreated() {
  const ids = [...created]
  created.clear()
  await Promise.all(ids.map((id) => Sandbox.kill(id).catch(() => false)))
}

/** A raw API call: status, parsed JSON (or null) and headers. */
export async function api(method, path, { body, rawBody, key = KEY, headers = {} } = {}) {
  const h = { ...headers }
  if (key !== null) h['X-API-Key'] = key
  if (body !== undefined || rawBody !== undefined) h['Content-Type'] = 'application/json'
  const res = await fetch(`${API}${path}`, {
    method,
    headers: h,
    body: rawBody !== undefined ? rawBody : body !== undefined ? JSON.stringify(body) : undefined,
  })
  const text = await res.text()
  let json = null
  try {
    json = text ? JSON.parse(text) : null
  } catch {
    json = { unparsed: text }
  }
  return { status: res.status, json, headers: res.headers }
}

/**
 * GET through the gateway with the Host header `sandbox.getHost(port)` (`<port>-<id>.localhost:<server port>`),
 * connecting to 127.0.0.1 as a browser or curl does for `*.localhost` (Node's resolver does not know it).
 */
export function hostGet(host, path = '/', { timeoutMs = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: PORT, path, method: 'GET', headers: { Host: host } }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString(), headers: res.headers }))
      res.on('error', reject)
    })
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from ${host}${path} in ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end()
  })
}

export { waitFor } from '../tests/helpers.mjs'

const run = promisify(execFile)

/** What the host still holds for a sandbox id: runc container, network namespace, files, mounts. Empty = nothing. */
export async function hostTraces(id) {
  const traces = []
  const runc = await run('runc', ['--root', '/run/capsule/runc', 'list', '-q'])
  if (runc.stdout.split('\n').includes(id)) traces.push(`runc container ${id}`)
  const ns = await run('ip', ['netns', 'list'])
  if (ns.stdout.split('\n').some((l) => l.split(' ')[0] === `capsule-${id}`)) traces.push(`network namespace capsule-${id}`)
  if (DATA_DIR && existsSync(`${DATA_DIR}/sandboxes/${id}`)) traces.push(`directory ${DATA_DIR}/sandboxes/${id}`)
  const mounts = await run('findmnt', ['-rn', '-o', 'TARGET'])
  for (const m of mounts.stdout.split('\n')) if (m.includes(id)) traces.push(`mount ${m}`)
  return traces
}

/** Restarts the server (stop by pid, sandboxes keep running, start on the same data dir and port). */
export async function restartServer() {
  await serverScript('restart')
}

/** Kills the server with SIGKILL (a crash: no shutdown at all) and starts it again on the same data dir and port. */
export async function crashServer() {
  await serverScript('crash')
}

/**
 * Simulates a host reboot: stops the server, removes every runc container, mount and network namespace of its
 * sandboxes (their processes die, their files stay), and starts it again on the same data dir and port.
 */
export async function rebootHost() {
  await serverScript('reboot')
}

async function serverScript(mode) {
  const script = process.env.CAPSULE_SERVER_SCRIPT
  if (!script) throw new Error('CAPSULE_SERVER_SCRIPT is not set: run through scripts/server-for-tests.sh run')
  await run(script, [mode, '--port', String(PORT)], { timeout: 300_000 })
}

export { Sandbox, sleep }
