// A stock Yjs client: y-websocket's WebsocketProvider against /collab/{workspace}/{path}.
// Usage: node client.mjs <serverUrl> <path> <token> <insert> <waitFor> [timeoutMs]
// Inserts <insert> at the start once synced, waits until the text contains <waitFor>,
// then prints {"text": ...} and exits 0 (1 on timeout).
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const [serverUrl, path, token, insert, waitFor, timeoutMs = '20000'] = process.argv.slice(2)
const doc = new Y.Doc()
const text = doc.getText('content')
const provider = new WebsocketProvider(serverUrl, path, doc, {
  WebSocketPolyfill: WebSocket,
  params: { token },
  disableBc: true,
})
provider.awareness.setLocalStateField('user', { name: 'node' })

const timer = setTimeout(() => {
  console.log(JSON.stringify({ text: text.toString(), timeout: true }))
  process.exit(1)
}, Number(timeoutMs))

const done = () => {
  if (text.toString().includes(waitFor) && text.toString().includes(insert)) {
    // Give the last update a moment to leave the socket before closing.
    setTimeout(() => {
      clearTimeout(timer)
      console.log(JSON.stringify({ text: text.toString() }))
      provider.destroy()
      process.exit(0)
    }, 300)
  }
}

provider.once('sync', (synced) => {
  if (!synced) return
  console.log(JSON.stringify({ synced: true, text: text.toString() }))
  text.insert(0, insert)
  text.observe(done)
  done()
})
