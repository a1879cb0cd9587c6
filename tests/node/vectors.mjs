// Prints y-protocols encodings the Python codec must reproduce byte for byte.
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as syncProtocol from 'y-protocols/sync'
import * as awarenessProtocol from 'y-protocols/awareness'
import * as authProtocol from 'y-protocols/auth'

const hex = (u8) => Buffer.from(u8).toString('hex')
const doc = new Y.Doc()
doc.clientID = 123456
doc.getText('content').insert(0, 'héllo 😀')

const step1 = encoding.createEncoder()
encoding.writeVarUint(step1, 0)
syncProtocol.writeSyncStep1(step1, doc)

const step2 = encoding.createEncoder()
encoding.writeVarUint(step2, 0)
syncProtocol.writeSyncStep2(step2, doc)

const update = Y.encodeStateAsUpdate(doc)
const updateMessage = encoding.createEncoder()
encoding.writeVarUint(updateMessage, 0)
syncProtocol.writeUpdate(updateMessage, update)

const awareness = new awarenessProtocol.Awareness(doc)
awareness.setLocalState({ user: { name: 'ada' }, cursor: 300 })
const awarenessMessage = encoding.createEncoder()
encoding.writeVarUint(awarenessMessage, 1)
encoding.writeVarUint8Array(awarenessMessage, awarenessProtocol.encodeAwarenessUpdate(awareness, [doc.clientID]))

const denied = encoding.createEncoder()
encoding.writeVarUint(denied, 2)
authProtocol.writePermissionDenied(denied, 'read-only')

console.log(JSON.stringify({
  state_vector: hex(Y.encodeStateVector(doc)),
  update: hex(update),
  step1: hex(encoding.toUint8Array(step1)),
  step2: hex(encoding.toUint8Array(step2)),
  update_message: hex(encoding.toUint8Array(updateMessage)),
  awareness_message: hex(encoding.toUint8Array(awarenessMessage)),
  awareness_clock: awareness.meta.get(doc.clientID).clock,
  denied: hex(encoding.toUint8Array(denied)),
}))
process.exit(0)
