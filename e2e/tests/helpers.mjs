// Shared set-up for the end-to-end suite: a Sandbox object of the official e2b SDK in debug mode, which talks
// straight to envd (http://localhost:49983, no API, no token, sandbox id `debug_sandbox_id`), and small helpers.
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'

import { Sandbox } from 'e2b'

/** E2B's default user and its home: every relative path resolves against it. */
export const USER = 'user'
export const HOME = '/home/user'

/** Unique per run, so a rerun against the same envd never sees files or processes of an earlier run. */
export const RUN = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`

let counter = 0
/** A name that no other test (or run) uses, e.g. `write-lq3x9a1f-3`. */
export function uniq(prefix) {
  counter += 1
  return `${prefix}-${RUN}-${counter}`
}

/**
 * The sandbox under test. Debug mode skips the control plane; CAPSULE_ENVD_URL (set by
 * scripts/envd-sandboxed.sh) points the SDK at envd when it is not on the default port.
 */
export async function debugSandbox() {
  const sandbox = await Sandbox.create({
    debug: true,
    sandboxUrl: process.env.CAPSULE_ENVD_URL || undefined,
  })
  if (sandbox.sandboxId !== 'debug_sandbox_id') {
    throw new Error(`expected the SDK's debug sandbox, got ${sandbox.sandboxId}: is E2B_DEBUG/debug honoured?`)
  }
  return sandbox
}

/** Polls `check` until it returns a truthy value; fails with `what` after `timeoutMs`. */
export async function waitFor(what, check, { timeoutMs = 20_000, intervalMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs
  let last
  for (;;) {
    try {
      last = await check()
      if (last) return last
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`)
    }
    await sleep(intervalMs)
  }
}

/** A promise with its resolve function, for events that arrive through callbacks. */
export function deferred() {
  let resolve
  const promise = new Promise((r) => {
    resolve = r
  })
  return { promise, resolve }
}

/** Rejects if `promise` does not settle in `timeoutMs`, naming `what`: keeps a missing event from hanging a test. */
export async function within(what, promise, timeoutMs = 15000) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Whether a process with this pid still runs, asked inside the sandbox (root sees every process). */
export async function isAlive(sandbox, pid) {
  const r = await sandbox.commands.run(`kill -0 ${pid} 2>/dev/null && echo alive || echo gone`, { user: 'root' })
  return r.stdout.trim() === 'alive'
}

export const encoder = new TextEncoder()
export const decoder = new TextDecoder()
