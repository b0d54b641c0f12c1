// sandbox.commands against envd's Process service, as E2B's own js-sdk tests (tests/sandbox/commands) use it.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { AuthenticationError, CommandExitError, NotFoundError, TimeoutError } from 'e2b'

import { HOME, USER, debugSandbox, deferred, isAlive, uniq, waitFor, within } from './helpers.mjs'

let sandbox
/** pids of background commands, killed after the tests whatever happened. */
const started = new Set()

before(async () => {
  sandbox = await debugSandbox()
})

after(async () => {
  for (const pid of started) await sandbox.commands.kill(pid).catch(() => {})
})

async function background(cmd, opts = {}) {
  const handle = await sandbox.commands.run(cmd, { ...opts, background: true })
  started.add(handle.pid)
  return handle
}

describe('commands.run', () => {
  test('run returns stdout and exit code 0', async () => {
    const r = await sandbox.commands.run('echo "Hello, World!"')
    assert.equal(r.exitCode, 0)
    assert.equal(r.stdout, 'Hello, World!\n')
    assert.equal(r.stderr, '')
  })

  test('run with special characters', async () => {
    const text = '!@#$%^&*()_+'
    const r = await sandbox.commands.run(`echo "${text}"`)
    assert.equal(r.stdout, `${text}\n`)
  })

  test('run with multiline string', async () => {
    const r = await sandbox.commands.run('echo "Hello,\nWorld!"')
    assert.equal(r.stdout, 'Hello,\nWorld!\n')
  })

  test('run with unicode output', async () => {
    const r = await sandbox.commands.run("printf '%s' 'žluťoučký kůň 😀'")
    assert.equal(r.stdout, 'žluťoučký kůň 😀')
  })

  test('stderr is kept apart from stdout', async () => {
    const r = await sandbox.commands.run('echo out; echo err 1>&2')
    assert.equal(r.stdout, 'out\n')
    assert.equal(r.stderr, 'err\n')
  })

  test('onStdout and onStderr receive the output as it comes', async () => {
    const out = []
    const err = []
    await sandbox.commands.run('echo one; echo two 1>&2; echo three', {
      onStdout: (d) => out.push(d),
      onStderr: (d) => err.push(d),
    })
    assert.equal(out.join(''), 'one\nthree\n')
    assert.equal(err.join(''), 'two\n')
  })

  test('large output arrives whole', async () => {
    const r = await sandbox.commands.run('head -c 3000000 /dev/zero | tr "\\0" "a"')
    assert.equal(r.stdout.length, 3000000)
    assert.match(r.stdout, /^a+$/)
  })

  test('runs as E2B default user in its home', async () => {
    const r = await sandbox.commands.run('echo "$(whoami) $(id -u) $(id -g) $(pwd) $HOME $USER"')
    assert.equal(r.stdout.trim(), `${USER} 1000 1000 ${HOME} ${HOME} ${USER}`)
  })

  test('runs as root when asked', async () => {
    const r = await sandbox.commands.run('echo "$(whoami) $(id -u) $(pwd) $HOME"', { user: 'root' })
    assert.equal(r.stdout.trim(), 'root 0 /root /root')
  })

  test('unknown user is refused', async () => {
    await assert.rejects(sandbox.commands.run('true', { user: `nobody-${Date.now()}` }), AuthenticationError)
  })

  test('cwd option sets the working directory', async () => {
    const dir = uniq('cwd')
    await sandbox.files.makeDir(dir)
    const r = await sandbox.commands.run('pwd', { cwd: `${HOME}/${dir}` })
    assert.equal(r.stdout.trim(), `${HOME}/${dir}`)
    const tmp = await sandbox.commands.run('pwd', { cwd: '/tmp' })
    assert.equal(tmp.stdout.trim(), '/tmp')
  })

  test('cwd that does not exist fails', async () => {
    await assert.rejects(sandbox.commands.run('pwd', { cwd: `/nonexistent-${Date.now()}` }))
  })

  test('command-scoped env vars', async () => {
    const r = await sandbox.commands.run('echo "$FOO $BAR"', { envs: { FOO: 'bar', BAR: 'with space' } })
    assert.equal(r.stdout.trim(), 'bar with space')
    // Scoped: not visible to the next command.
    const r2 = await sandbox.commands.run('echo "[$FOO]"')
    assert.equal(r2.stdout.trim(), '[]')
  })

  test('env vars reach a child program', async () => {
    const r = await sandbox.commands.run('env | grep ^CAPSULE_E2E_VAR=', { envs: { CAPSULE_E2E_VAR: 'x=y' } })
    assert.equal(r.stdout.trim(), 'CAPSULE_E2E_VAR=x=y')
  })

  test('non-zero exit rejects with CommandExitError carrying exitCode and output', async () => {
    await assert.rejects(sandbox.commands.run('echo partial; echo oops 1>&2; exit 3'), (err) => {
      assert.ok(err instanceof CommandExitError, `expected CommandExitError, got ${err?.constructor?.name}: ${err}`)
      assert.equal(err.exitCode, 3)
      assert.equal(err.stdout, 'partial\n')
      assert.equal(err.stderr, 'oops\n')
      return true
    })
  })

  test('command not found exits 127', async () => {
    await assert.rejects(sandbox.commands.run(`no-such-command-${Date.now()}`), (err) => {
      assert.ok(err instanceof CommandExitError)
      assert.equal(err.exitCode, 127)
      return true
    })
  })

  test('timeout rejects with TimeoutError and ends the process', async () => {
    const marker = uniq('timeout')
    const cmd = `sleep 30 # ${marker}`
    await assert.rejects(sandbox.commands.run(cmd, { timeoutMs: 1000 }), (err) => {
      assert.ok(err instanceof TimeoutError, `expected TimeoutError, got ${err?.constructor?.name}: ${err}`)
      return true
    })
    // Connect-Timeout-Ms on Start bounds the process's life: envd must kill it.
    await waitFor('the timed-out process to be gone from commands.list()', async () => {
      const list = await sandbox.commands.list()
      return !list.some((p) => p.args.some((a) => a.includes(marker)))
    })
  })

  test('run within its timeout succeeds', async () => {
    const r = await sandbox.commands.run('echo "Hello, World!"', { timeoutMs: 10000 })
    assert.equal(r.exitCode, 0)
  })
})

describe('background commands', () => {
  test('background returns a handle with a pid; wait gives the result', async () => {
    const handle = await background('sleep 0.5; echo done')
    assert.ok(Number.isInteger(handle.pid) && handle.pid > 0, `pid ${handle.pid}`)
    const r = await handle.wait()
    assert.equal(r.exitCode, 0)
    assert.equal(r.stdout, 'done\n')
    assert.equal(handle.exitCode, 0)
  })

  test('wait on a failing background command rejects with CommandExitError', async () => {
    const handle = await background('sleep 0.2; exit 7')
    await assert.rejects(handle.wait(), (err) => err instanceof CommandExitError && err.exitCode === 7)
  })

  test('stdin: sendStdin, then closeStdin ends cat', async () => {
    const handle = await background('cat', { stdin: true })
    await sandbox.commands.sendStdin(handle.pid, 'Hello, World!')
    await waitFor('cat to echo stdin', () => handle.stdout === 'Hello, World!')
    await sandbox.commands.sendStdin(handle.pid, '\n!@#$%^&*()_+\nlast line')
    await sandbox.commands.closeStdin(handle.pid)
    const r = await within('cat to exit after closeStdin', handle.wait())
    assert.equal(r.exitCode, 0)
    assert.equal(r.stdout, 'Hello, World!\n!@#$%^&*()_+\nlast line')
  })

  test('stdin through the handle, bytes included', async () => {
    const handle = await background('wc -c', { stdin: true })
    await handle.sendStdin(new Uint8Array([0, 1, 2, 255]))
    await handle.sendStdin('abc')
    await handle.closeStdin()
    const r = await within('wc to exit', handle.wait())
    assert.equal(r.stdout.trim(), '7')
  })

  test('empty stdin changes nothing', async () => {
    const handle = await background('cat', { stdin: true })
    await sandbox.commands.sendStdin(handle.pid, '')
    await handle.closeStdin()
    const r = await within('cat to exit', handle.wait())
    assert.equal(r.stdout, '')
  })

  test('without stdin:true a command reads end of file', async () => {
    const r = await sandbox.commands.run('cat; echo "rc=$?"')
    assert.equal(r.stdout, 'rc=0\n')
  })

  test('kill ends a background command', async () => {
    const handle = await background('sleep 30')
    assert.equal(await sandbox.commands.kill(handle.pid), true)
    await assert.rejects(within('the killed command to end', handle.wait()), (err) => {
      assert.ok(err instanceof CommandExitError, `expected CommandExitError, got ${err}`)
      assert.notEqual(err.exitCode, 0)
      return true
    })
    await waitFor(`pid ${handle.pid} to be gone`, async () => !(await isAlive(sandbox, handle.pid)))
    await assert.rejects(sandbox.commands.run(`kill -0 ${handle.pid}`), CommandExitError)
  })

  test('kill through the handle', async () => {
    const handle = await background('sleep 30')
    assert.equal(await handle.kill(), true)
    await assert.rejects(within('the killed command to end', handle.wait()), CommandExitError)
  })

  test('kill reaches the whole process group', async () => {
    const marker = uniq('group')
    const handle = await background(`sleep 31 & sleep 32 & wait # ${marker}`)
    await waitFor('both sleeps to start', async () => {
      const r = await sandbox.commands.run(`pgrep -g ${handle.pid} -c sleep || true`, { user: 'root' })
      return r.stdout.trim() === '2'
    })
    await sandbox.commands.kill(handle.pid)
    await assert.rejects(within('the killed command to end', handle.wait()))
    await waitFor('the children to be gone', async () => {
      const r = await sandbox.commands.run(`pgrep -g ${handle.pid} -c . || true`, { user: 'root' })
      return r.stdout.trim() === '0'
    })
  })

  test('kill of a pid that does not exist returns false', async () => {
    assert.equal(await sandbox.commands.kill(999999), false)
  })

  test('list shows running commands with their config', async () => {
    const marker = uniq('list')
    const a = await background(`sleep 30 # ${marker}-a`, { envs: { LIST_VAR: 'a' }, cwd: '/tmp' })
    const b = await background(`sleep 30 # ${marker}-b`)
    const list = await sandbox.commands.list()
    assert.ok(Array.isArray(list))
    assert.ok(list.length >= 2)
    for (const p of list) assert.ok('pid' in p)
    const pa = list.find((p) => p.pid === a.pid)
    const pb = list.find((p) => p.pid === b.pid)
    assert.ok(pa, `pid ${a.pid} missing from ${JSON.stringify(list)}`)
    assert.ok(pb, `pid ${b.pid} missing from ${JSON.stringify(list)}`)
    assert.equal(pa.cmd, '/bin/bash')
    assert.deepEqual(pa.args, ['-l', '-c', `sleep 30 # ${marker}-a`])
    assert.equal(pa.envs.LIST_VAR, 'a')
    assert.equal(pa.cwd, '/tmp')
    await a.kill()
    await b.kill()
    await waitFor('killed commands to leave the list', async () => {
      const now = await sandbox.commands.list()
      return !now.some((p) => p.pid === a.pid || p.pid === b.pid)
    })
  })

  test('connect to a running command gets its later output and its end', async () => {
    const handle = await background('sleep 1; echo after-connect; exit 4')
    const out = []
    const connected = await sandbox.commands.connect(handle.pid, { onStdout: (d) => out.push(d) })
    assert.equal(connected.pid, handle.pid)
    await assert.rejects(within('the connected command to end', connected.wait()), (err) => {
      assert.ok(err instanceof CommandExitError)
      assert.equal(err.exitCode, 4)
      assert.match(err.stdout, /after-connect/)
      return true
    })
    assert.match(out.join(''), /after-connect/)
  })

  test('disconnect does not kill the command; a later connect sees it finish', async () => {
    const handle = await background('sleep 1.5; echo finished')
    await handle.disconnect()
    assert.equal(await isAlive(sandbox, handle.pid), true)
    const again = await sandbox.commands.connect(handle.pid)
    const r = await within('the reconnected command to end', again.wait())
    assert.equal(r.exitCode, 0)
    assert.equal(r.stdout, 'finished\n')
  })

  test('two clients connected at once both get the output', async () => {
    const handle = await background('sleep 1; echo both')
    const second = await sandbox.commands.connect(handle.pid)
    const [r1, r2] = await within('both handles to end', Promise.all([handle.wait(), second.wait()]))
    assert.equal(r1.stdout, 'both\n')
    assert.equal(r2.stdout, 'both\n')
  })

  test('connect to a pid that does not exist fails with NotFoundError', async () => {
    await assert.rejects(sandbox.commands.connect(999999), NotFoundError)
  })

  test('sendStdin to a pid that does not exist fails with NotFoundError', async () => {
    await assert.rejects(sandbox.commands.sendStdin(999999, 'x'), NotFoundError)
  })

  test('many short commands in parallel', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => sandbox.commands.run(`echo ${i}`))
    )
    results.forEach((r, i) => assert.equal(r.stdout, `${i}\n`))
  })

  test('output callback sees data before the command ends', async () => {
    const first = deferred()
    const handle = await background('echo early; sleep 30', { onStdout: (d) => d.includes('early') && first.resolve() })
    await within('the first line while the command still runs', first.promise)
    assert.equal(handle.exitCode, undefined)
    await handle.kill()
  })
})
