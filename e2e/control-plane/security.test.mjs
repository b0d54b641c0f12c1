// Security controls with the official SDK against a real server: secured envd (requests without the token fail,
// however they are routed), signed download/upload URLs through the gateway (valid, expired, tampered), the traffic
// access token on user ports, per-key rate limits and the sandbox quota (429 + Retry-After, retried by the SDK
// itself), envd's resource_exhausted when a sandbox runs out of processes, and what root inside a sandbox cannot do.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import http from 'node:http'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { after, before, describe, test } from 'node:test'

import { AuthenticationError, RateLimitError } from 'e2b'

import { DATA_DIR, HOME, PORT, RUN, Sandbox, api, create, killCreated, sleep, waitFor } from './helpers.mjs'

after(killCreated)

const CAPSULE = fileURLToPath(new URL('../../bin/capsule', import.meta.url))
const UNAUTHORIZED = 'unauthorized access, please provide a valid access token or method signing if supported'

/** A request to 127.0.0.1 through the gateway with any headers (Host routing included); status, body, headers. */
function raw(method, path, headers = {}, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: PORT, path, method, headers }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString(), headers: res.headers }))
      res.on('error', reject)
    })
    req.setTimeout(30_000, () => req.destroy(new Error(`no answer to ${method} ${path}`)))
    req.on('error', reject)
    req.end(body)
  })
}

const envdHeaders = (sandbox, extra = {}) => ({ 'E2b-Sandbox-Id': sandbox.sandboxId, 'E2b-Sandbox-Port': '49983', ...extra })

/** `bin/capsule keys ...` against the test server's data directory (the same SQLite store the server uses). */
async function keys(...args) {
  const { stdout } = await promisify(execFile)(CAPSULE, ['keys', ...args, `--data-dir=${DATA_DIR}`], { timeout: 120_000 })
  return stdout.trim()
}

describe('secured envd', () => {
  let sandbox
  before(async () => {
    sandbox = await create()
    await sandbox.files.write('secret.txt', 'only with the token')
  })

  test('create returns an envd access token, and the SDK uses it', async () => {
    assert.match(sandbox.envdAccessToken, /^[0-9a-f]{64}$/)
    assert.equal((await sandbox.commands.run('cat secret.txt')).stdout, 'only with the token')
    assert.equal((await Sandbox.getInfo(sandbox.sandboxId)).sandboxId, sandbox.sandboxId)
  })

  test('an SDK client without the token, or with a wrong one, is refused', async () => {
    for (const envdAccessToken of [undefined, 'wrong']) {
      const intruder = new Sandbox({ sandboxId: sandbox.sandboxId, envdVersion: '0.6.13', envdAccessToken })
      await assert.rejects(intruder.commands.run('id'), AuthenticationError)
      await assert.rejects(intruder.files.read('secret.txt'), AuthenticationError)
      await assert.rejects(intruder.files.list(HOME), AuthenticationError)
    }
  })

  test('raw requests without the token are refused by header and by Host routing alike', async () => {
    const byHost = { Host: `49983-${sandbox.sandboxId}.localhost:${PORT}` }
    for (const route of [envdHeaders(sandbox), byHost]) {
      const rpc = await raw('POST', '/process.Process/List', { ...route, 'Content-Type': 'application/json' }, '{}')
      assert.equal(rpc.status, 401)
      assert.equal(JSON.parse(rpc.body).message, UNAUTHORIZED)
      const files = await raw('GET', `/files?path=${encodeURIComponent(`${HOME}/secret.txt`)}`, route)
      assert.equal(files.status, 401)
      assert.equal(JSON.parse(files.body).message, 'missing signature query parameter')
      assert.equal((await raw('GET', '/envs', route)).status, 401)
      // envd's internal endpoints are not reachable at all, not even with the token
      const init = await raw('POST', '/%69nit', { ...route, 'X-Access-Token': sandbox.envdAccessToken }, '{}')
      assert.equal(init.status, 403)
      // health needs no token (the SDK's isRunning())
      assert.equal((await raw('GET', '/health', route)).status, 204)
    }
    const ok = await raw('POST', '/process.Process/List', envdHeaders(sandbox,
      { 'Content-Type': 'application/json', 'X-Access-Token': sandbox.envdAccessToken }), '{}')
    assert.equal(ok.status, 200)
  })
})

describe('signed URLs through the gateway', () => {
  let sandbox
  before(async () => {
    sandbox = await create()
    await sandbox.files.write('report.txt', 'signed content')
  })

  // With E2B_SANDBOX_URL set the SDK's URLs name no sandbox: the gateway finds it by the signature.
  test('downloadUrl works as the SDK made it, and by Host routing', async () => {
    const url = new URL(await sandbox.downloadUrl('report.txt'))
    assert.ok(url.searchParams.get('signature')?.startsWith('v1_'))
    const res = await fetch(url)
    assert.equal(res.status, 200)
    assert.equal(await res.text(), 'signed content')
    const byHost = await raw('GET', url.pathname + url.search, { Host: `49983-${sandbox.sandboxId}.localhost:${PORT}` })
    assert.equal(byHost.status, 200)
    assert.equal(byHost.body, 'signed content')
  })

  test('uploadUrl takes a multipart upload', async () => {
    const url = await sandbox.uploadUrl('uploaded.txt', { useSignatureExpiration: 120 })
    assert.match(url, /signature_expiration=\d+/)
    const form = new FormData()
    form.append('file', new Blob(['sent with a signed URL']), 'uploaded.txt')
    const res = await fetch(url, { method: 'POST', body: form })
    assert.equal(res.status, 200, await res.clone().text())
    assert.equal(await sandbox.files.read('uploaded.txt'), 'sent with a signed URL')
  })

  test('an expired URL is refused with E2B\'s message', async () => {
    const url = new URL(await sandbox.downloadUrl('report.txt', { useSignatureExpiration: -60 }))
    const res = await fetch(url)
    assert.equal(res.status, 401)
    assert.equal((await res.json()).message, 'signature is already expired')
  })

  test('a tampered URL is refused: other path, other operation, other user, altered signature', async () => {
    const signed = new URL(await sandbox.downloadUrl('report.txt', { useSignatureExpiration: 600 }))
    const variants = []
    const otherPath = new URL(signed)
    otherPath.searchParams.set('path', '/etc/shadow')
    variants.push(['GET', otherPath])
    const otherUser = new URL(signed)
    otherUser.searchParams.set('username', 'root')
    variants.push(['GET', otherUser])
    const altered = new URL(signed)
    const sig = altered.searchParams.get('signature')
    altered.searchParams.set('signature', sig.slice(0, -1) + (sig.endsWith('A') ? 'B' : 'A'))
    variants.push(['GET', altered])
    const longer = new URL(signed)
    longer.searchParams.set('signature_expiration', String(Number(signed.searchParams.get('signature_expiration')) + 3600))
    variants.push(['GET', longer])
    variants.push(['POST', signed]) // a read signature does not allow a write
    for (const [method, url] of variants) {
      const res = await fetch(url, { method, body: method === 'POST' ? new FormData() : undefined })
      assert.equal(res.status, 401, `${method} ${url}`)
      assert.equal((await res.json()).message, 'invalid signature')
      // routed to the sandbox by Host, envd itself refuses it the same way
      const byHost = await raw(method, url.pathname + url.search, { Host: `49983-${sandbox.sandboxId}.localhost:${PORT}` })
      assert.equal(byHost.status, 401)
      assert.equal(JSON.parse(byHost.body).message, 'invalid signature')
    }
  })
})

describe('traffic access token', () => {
  let sandbox
  before(async () => {
    sandbox = await create({ network: { allowPublicTraffic: false } })
    await sandbox.files.write('site/index.html', 'private page')
    await sandbox.commands.run('python3 -m http.server 8000 --directory /home/user/site', { background: true })
  })

  test('create and connect return it; getInfo shows the closed network', async () => {
    assert.match(sandbox.trafficAccessToken, /^[0-9a-f]{64}$/)
    assert.notEqual(sandbox.trafficAccessToken, sandbox.envdAccessToken)
    const again = await Sandbox.connect(sandbox.sandboxId)
    assert.equal(again.trafficAccessToken, sandbox.trafficAccessToken)
    assert.equal((await Sandbox.getInfo(sandbox.sandboxId)).network.allowPublicTraffic, false)
  })

  test('a user port needs the e2b-traffic-access-token header; envd does not', async () => {
    const host = { Host: sandbox.getHost(8000) }
    const missing = await raw('GET', '/index.html', host)
    assert.equal(missing.status, 403)
    assert.deepEqual(JSON.parse(missing.body), { sandboxId: sandbox.sandboxId, code: 403,
      message: 'Sandbox is secured with traffic access token. Token header \'e2b-traffic-access-token\' is missing' })
    const wrong = await raw('GET', '/index.html', { ...host, 'e2b-traffic-access-token': sandbox.envdAccessToken })
    assert.equal(wrong.status, 403)
    assert.match(JSON.parse(wrong.body).message, /Provided token in header 'e2b-traffic-access-token' is invalid/)
    const ok = await waitFor('the server with the token', async () => {
      const r = await raw('GET', '/index.html', { ...host, 'e2b-traffic-access-token': sandbox.trafficAccessToken })
      return r.status === 200 && r
    })
    assert.equal(ok.body, 'private page')
    // envd's port keeps its own token only
    assert.equal((await sandbox.commands.run('echo envd')).stdout, 'envd\n')
  })

  test('a sandbox with public traffic has no traffic token', async () => {
    const open = await create()
    assert.equal(open.trafficAccessToken, undefined)
  })

  test('closing user ports needs a secured sandbox (v1 secure:false is refused, as in E2B)', async () => {
    const r = await api('POST', '/sandboxes', { body: { templateID: 'base', secure: false, network: { allowPublicTraffic: false } } })
    assert.equal(r.status, 400)
    assert.match(r.json.message, /without public access unless you enable secure envd access/)
  })
})

describe('rate limits and quota per API key', () => {
  let limited
  let id
  before(async () => {
    limited = await keys('create', '--name', `security-${RUN}`)
    assert.match(limited, /^e2b_[0-9a-f]{40}$/)
    id = limited.slice(4, 12)
    assert.equal(await keys('limits', limited, '--creates-per-second', '1'),
      `${id}\trequests=server creates-per-second=1 sandboxes=server`)
  })
  after(() => keys('revoke', limited))

  const createWith = (opts = {}) => create({ apiKey: limited, ...opts })
  /** Waits for the key's creates bucket (1 per second) to hold a token again. */
  const refill = () => sleep(1100)

  test('two creates at once: a direct request sees 429 with Retry-After', async () => {
    await refill()
    const [a, b] = await Promise.all([1, 2].map(() =>
      api('POST', '/v2/sandboxes', { key: limited, body: { templateID: 'base', timeout: 120, metadata: { run: RUN } } })))
    const statuses = [a.status, b.status].sort()
    assert.deepEqual(statuses, [201, 429])
    const refused = a.status === 429 ? a : b
    assert.match(refused.headers.get('retry-after'), /^[1-9][0-9]*$/)
    assert.equal(refused.json.code, 429)
    assert.match(refused.json.message, /more than 1 sandboxes in a second/)
    const made = a.status === 201 ? a : b
    assert.equal((await api('DELETE', `/sandboxes/${made.json.sandboxID}`)).status, 204)
  })

  test('two creates at once through the SDK: without retries one fails, with its default retries both succeed', async () => {
    await refill()
    const once = await Promise.allSettled([1, 2].map(() => createWith({ retries: 0 })))
    assert.deepEqual(once.map((r) => r.status).sort(), ['fulfilled', 'rejected'])
    assert.ok(once.find((r) => r.status === 'rejected').reason instanceof RateLimitError)
    await once.find((r) => r.status === 'fulfilled').value.kill()

    const retried = await Promise.all([1, 2].map(() => createWith()))
    assert.equal(new Set(retried.map((s) => s.sandboxId)).size, 2)
    await Promise.all(retried.map((s) => s.kill()))
  })

  test('the sandbox quota counts running and paused sandboxes', async () => {
    await keys('limits', limited, '--creates-per-second', '0', '--sandboxes', '1')
    const first = await createWith()
    // the one place is taken: the SDK gets a RateLimitError (its wait would outlast the request timeout)
    await assert.rejects(createWith(), RateLimitError)
    const direct = await api('POST', '/v2/sandboxes', { key: limited, body: { templateID: 'base' } })
    assert.equal(direct.status, 429)
    assert.match(direct.json.message, /has 1 sandboxes \(running or paused\), its limit/)
    assert.match(direct.headers.get('retry-after'), /^[1-9][0-9]*$/) // when the running one times out
    assert.equal(await first.pause(), true)
    const whilePaused = await api('POST', '/v2/sandboxes', { key: limited, body: { templateID: 'base' } })
    assert.equal(whilePaused.status, 429)
    assert.equal(whilePaused.headers.get('retry-after'), null) // a paused sandbox never ends by itself
    await Sandbox.kill(first.sandboxId)
    const next = await createWith()
    await next.kill()
  })

  test('requests over the key\'s limit get 429 with Retry-After, other keys are not affected', async () => {
    await keys('limits', limited, '--requests', '3', '--sandboxes', '0')
    const statuses = []
    for (let i = 0; i < 5; i++) statuses.push((await api('GET', '/v2/sandboxes?limit=1', { key: limited })).status)
    assert.deepEqual(statuses.slice(0, 3), [200, 200, 200])
    assert.deepEqual(statuses.slice(3), [429, 429])
    const refused = await api('GET', '/v2/sandboxes?limit=1', { key: limited })
    assert.match(refused.headers.get('retry-after'), /^[1-9][0-9]*$/)
    assert.equal((await api('GET', '/v2/sandboxes?limit=1')).status, 200)
  })
})

describe('envd\'s own limits', () => {
  test('a sandbox out of processes answers resource_exhausted (RateLimitError), and recovers', async () => {
    const sandbox = await create()
    const script = 'import os, time\n' +
      'n = 0\n' +
      'try:\n' +
      '    while True:\n' +
      '        if os.fork() == 0:\n' +
      '            time.sleep(600)\n' +
      '            os._exit(0)\n' +
      '        n += 1\n' +
      'except OSError as e:\n' +
      '    print(n, e.errno, flush=True)\n' +
      'time.sleep(600)\n'
    await sandbox.files.write(`${HOME}/fill.py`, script)
    const filler = await sandbox.commands.run(`python3 ${HOME}/fill.py`, { background: true, user: 'root' })
    await waitFor('the sandbox to run out of processes', async () => /^\d+ 11\n$/.test(filler.stdout), { timeoutMs: 60_000 })
    const err = await sandbox.commands.run('echo hi').then(() => null, (e) => e)
    assert.ok(err instanceof RateLimitError, `expected RateLimitError, got ${err}`)
    assert.match(err.message, /no room for another process/)
    assert.equal(await sandbox.isRunning(), true)
    await filler.kill()
    const ok = await waitFor('processes to be freed', async () => {
      try {
        return (await sandbox.commands.run('echo again')).stdout === 'again\n'
      } catch {
        return false
      }
    }, { timeoutMs: 30_000 })
    assert.equal(ok, true)
  })
})

describe('hardening: what root inside a sandbox cannot do', () => {
  let sandbox
  before(async () => {
    sandbox = await create()
  })

  /** Runs `cmd` as root; returns its exit code and output (a non-zero exit is not an error here). */
  async function root(cmd) {
    try {
      const r = await sandbox.commands.run(cmd, { user: 'root' })
      return { code: r.exitCode, out: r.stdout + r.stderr }
    } catch (e) {
      if (e.exitCode === undefined) throw e
      return { code: e.exitCode, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }
    }
  }

  test('it has Docker\'s default capabilities, a seccomp filter, no user namespace, no_new_privs off', async () => {
    const status = (await root('cat /proc/self/status')).out
    const field = (name) => status.match(new RegExp(`^${name}:\\s*(\\S+)`, 'm'))[1]
    assert.equal(field('CapBnd'), '00000000a80425fb') // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP
    assert.equal(field('CapEff'), '00000000a80425fb')
    assert.equal(field('Seccomp'), '2')
    assert.equal(field('NoNewPrivs'), '0')
    assert.match((await root('cat /proc/self/uid_map')).out, /^\s*0\s+0\s+4294967295\s*$/)
    assert.equal((await sandbox.commands.run('sudo -n id -u')).stdout, '0\n')
  })

  test('it cannot mount, make namespaces, set the hostname or the clock, or load modules', async () => {
    for (const cmd of ['mount -t tmpfs none /mnt', 'unshare --user --map-root-user true', 'unshare --net true',
      'unshare --mount true', 'python3 -c "import socket; socket.sethostname(\'other\')"', 'date -s 2000-01-01']) {
      const r = await root(cmd)
      assert.notEqual(r.code, 0, `${cmd} succeeded: ${r.out}`)
      assert.match(r.out, /not permitted|permission denied/i, cmd)
    }
    // init_module(2), bpf(2) and io_uring_setup(2) fail with EPERM (errno 1): seccomp, and the missing capabilities
    for (const nr of [175, 321, 425]) {
      const r = await root(`python3 -c "import ctypes; l = ctypes.CDLL(None, use_errno=True); ` +
        `print(l.syscall(${nr}, 0, 0, 0), ctypes.get_errno())"`)
      assert.equal(r.out.trim(), '-1 1', `syscall ${nr}`)
    }
  })

  test('kernel interfaces are read-only or masked; devices cannot be opened', async () => {
    assert.notEqual((await root('echo 1 > /proc/sys/net/ipv4/ip_forward')).code, 0)
    assert.notEqual((await root('echo b > /proc/sysrq-trigger')).code, 0)
    assert.notEqual((await root('echo 1 > /sys/kernel/profiling')).code, 0)
    for (const masked of ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/proc/sched_debug', '/proc/interrupts']) {
      // absent on some kernels; where present, /dev/null is mounted over it
      assert.equal((await root(`cat ${masked} 2>/dev/null | head -c 1 | wc -c`)).out.trim(), '0', masked)
    }
    assert.equal((await root('ls -A /sys/firmware | wc -l')).out.trim(), '0') // masked with an empty tmpfs
    // the device cgroup allows only the default devices: no disk can be made or opened
    const disk = await root('mknod /tmp/sda b 8 0 && head -c 1 /tmp/sda')
    assert.notEqual(disk.code, 0)
    assert.match(disk.out, /Operation not permitted/)
    assert.equal((await root('head -c 4 /dev/zero | wc -c')).out.trim(), '4') // the default devices work
  })

  test('it sees only its own processes and cannot change its network', async () => {
    const pids = (await root('ls /proc | grep -E "^[0-9]+$" | wc -l')).out.trim()
    assert.ok(Number(pids) < 100, `${pids} processes visible`)
    assert.match((await root('cat /proc/1/cmdline | tr "\\0" " "')).out, /\/opt\/capsule/)
    // no CAP_NET_ADMIN: routes, links and firewall rules stay as the host set them
    const net = await root('python3 -c "import socket,fcntl,struct; s=socket.socket(); ' +
      'fcntl.ioctl(s, 0x8914, struct.pack(\'16sH\', b\'lo\', 0))"') // SIOCSIFFLAGS: take lo down
    assert.notEqual(net.code, 0)
    assert.match(net.out, /Operation not permitted/)
  })

  test('its cgroup limits are set and read-only', async () => {
    const limits = await root('cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null ||' +
      ' cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max')
    const [memory, pids] = limits.out.trim().split('\n')
    assert.equal(Number(memory), 512 * 1024 * 1024)
    assert.equal(pids, '1024')
    const write = await root('f=/sys/fs/cgroup/pids/pids.max; [ -e $f ] || f=/sys/fs/cgroup/pids.max; echo max > $f')
    assert.notEqual(write.code, 0)
    assert.match(write.out, /Read-only file system/)
  })
})
