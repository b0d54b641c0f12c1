// One server, two drivers side by side (`capsule server --runtimes oci,microvm`): a container and a microVM at
// once, each created by naming its driver in the create request (`runtime`, a Capsule extension the SDK does not
// send), used through the official SDK, paused and resumed on its own driver, and both adopted after a restart.
// scripts/test.sh runs it against a server started with --runtime microvm --runtimes oci.
import assert from 'node:assert/strict'
import os from 'node:os'
import { after, test } from 'node:test'

import { Sandbox, api, killCreated, restartServer, track } from '../helpers.mjs'

after(killCreated)

async function createOn(runtime) {
  const res = await api('POST', '/sandboxes', { body: { templateID: 'base', timeout: 600, runtime } })
  assert.equal(res.status, 201, JSON.stringify(res.json))
  return track(await Sandbox.connect(res.json.sandboxID))
}

async function info(sandbox) {
  const res = await api('GET', `/sandboxes/${sandbox.sandboxId}`)
  assert.equal(res.status, 200, JSON.stringify(res.json))
  return res.json
}

test('a container and a microVM run side by side, each on the driver its create named', async () => {
  const container = await createOn('oci')
  const vm = await createOn('microvm')
  assert.equal((await info(container)).runtime, 'oci')
  assert.equal((await info(vm)).runtime, 'microvm')

  // a container shares the host's kernel; the VM boots its own (Debian's cloud kernel)
  assert.equal((await container.commands.run('uname -r')).stdout.trim(), os.release())
  const vmKernel = (await vm.commands.run('uname -r')).stdout.trim()
  assert.notEqual(vmKernel, os.release())
  assert.match(vmKernel, /cloud-amd64$/)

  await container.files.write('where.txt', 'container')
  await vm.files.write('where.txt', 'vm')

  const unknown = await api('POST', '/sandboxes', { body: { templateID: 'base', runtime: 'firecracker' } })
  assert.equal(unknown.status, 400)
  assert.match(unknown.json.message, /firecracker/)

  assert.equal((await api('POST', `/sandboxes/${vm.sandboxId}/pause`, { body: {} })).status, 204)
  assert.equal((await info(vm)).state, 'paused')
  assert.equal((await info(container)).state, 'running', 'pausing the VM leaves the container alone')
  const resumed = await Sandbox.connect(vm.sandboxId)
  assert.equal(await resumed.files.read('where.txt'), 'vm')

  await restartServer()

  for (const [sandbox, runtime, file] of [[container, 'oci', 'container'], [vm, 'microvm', 'vm']]) {
    const after = await info(sandbox)
    assert.equal(after.state, 'running')
    assert.equal(after.runtime, runtime)
    assert.equal(await (await Sandbox.connect(sandbox.sandboxId)).files.read('where.txt'), file)
  }
  assert.equal(await Sandbox.kill(vm.sandboxId), true)
  assert.equal(await Sandbox.kill(container.sandboxId), true)
})
